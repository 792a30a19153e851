-- wrk script: every request of a run asks for a box no other request of that run asked for, and
-- the box is always limited by its width (the 4:3 photo needs h >= 0.75 w), so every request
-- is a miss with [cache] raster = 1. Argument: a path with {w} and {h}. Threads take
-- alternate widths: 600, 601, 602, … (about 800 on average over a 10 s run).
local counter = 0
local threads = 0
local fmt

function setup(thread)
  thread:set("id", threads)
  threads = threads + 1
end

function init(args)
  fmt = args[1]
end

function request()
  local w = 600 + 2 * counter + id
  counter = counter + 1
  local path = fmt:gsub("{w}", tostring(w)):gsub("{h}", "2000")
  return wrk.format("GET", path)
end
