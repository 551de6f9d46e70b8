-- SPDX-License-Identifier: Apache-2.0
local t = {} t.t = t
return {kind = "X", machine = ward.machine {states = {"A"}}, tests = {ward.test {resource = {state = "A", spec = t}, to = "A"}}}
