module {{name}}

go 1.24

// The weft package (the contract's glue) is in ./weft, written by
// `weft plugin new`; it is not fetched from anywhere.
require weft.example/weft v0.0.0

replace weft.example/weft => ./weft
