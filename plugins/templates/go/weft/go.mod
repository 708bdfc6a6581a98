module weft.example/weft

go 1.24
