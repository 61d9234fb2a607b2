-- Argo CD actions of a cost-analysis Job: cancel, while the run can still be canceled
-- (not yet picked up, or IN_PROGRESS and not ending), and not already requested.
local actions = {}
local st = obj.status or {}
local state = st.status or ""
local running = (state == "" or state == "IN_PROGRESS") and st.ending == nil
local requested = obj.spec ~= nil and obj.spec.cancel == true
actions["cancel"] = {
  ["displayName"] = "Cancel run",
  ["iconClass"] = "fa fa-fw fa-ban",
  ["disabled"] = requested or not running
}
return actions
