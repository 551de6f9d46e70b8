log_level = "debug"
plugin "a" { text = "hi", secret = "s3cret-value", number = 5, flag = true, period = "1h30m" }
plugin("b", { optional = true, path = "/x" })
