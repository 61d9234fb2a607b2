-- Argo CD action "cancel" of a cost-analysis Job: sets spec.cancel, after which the
-- operator stops the run's task pods, rolls back its records and ends it CANCELED.
-- spec.cancel cannot be set back to false.
local st = obj.status or {}
local state = st.status or ""
if state ~= "" and state ~= "IN_PROGRESS" then
  error("Job " .. obj.metadata.name .. " already finished " .. state .. ": there is nothing to cancel", 0)
end
if st.ending ~= nil then
  error("Job " .. obj.metadata.name .. " is already ending " .. (st.ending.status or "") .. ": there is nothing to cancel", 0)
end
if obj.spec.cancel == true then
  error("Job " .. obj.metadata.name .. " is already being canceled", 0)
end
obj.spec.cancel = true
return obj
