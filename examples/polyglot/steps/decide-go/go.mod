module decide

go 1.24

require weft.example/weft v0.0.0

// The same glue a new Go plugin gets, from the template.
replace weft.example/weft => ../../../../plugins/templates/go/weft
