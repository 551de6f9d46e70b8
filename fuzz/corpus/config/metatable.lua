setmetatable(_ENV, nil) x = 1
plugin "p" (setmetatable({}, {__index = function() error("boom") end}))
