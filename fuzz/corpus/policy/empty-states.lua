-- SPDX-License-Identifier: Apache-2.0
return {kind = "X", machine = ward.machine {states = {}}}
