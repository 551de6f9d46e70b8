plugin "p" { [1] = 2, [true] = 3 }
