module edgedsdk

go 1.24
