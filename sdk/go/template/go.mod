module {{name}}

go 1.24

require edgedsdk v0.0.0

replace edgedsdk => ./sdk
