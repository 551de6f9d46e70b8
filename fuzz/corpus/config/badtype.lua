plugin "a" { number = "x" }
