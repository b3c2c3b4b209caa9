module cbor_json

go 1.24

require (
	edgedsdk v0.0.0
	github.com/fxamacker/cbor/v2 v2.10.0
)

require github.com/x448/float16 v0.8.4 // indirect

replace edgedsdk => ../..
