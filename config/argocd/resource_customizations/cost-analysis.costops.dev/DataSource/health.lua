-- Argo CD health of a cost-analysis DataSource (cost-analysis.costops.dev/v1): a
-- billing source and its plugin. Degraded when the plugin (PluginReady) or the store
-- (StoreReady) is not ready, or the schedule cannot be read; Progressing until the
-- operator has checked the current generation; Healthy otherwise.
-- Only Argo CD's default Lua libraries (base, table): no os, string or math.
local hs = {}
local st = obj.status or {}

local conditions = {}
for _, c in ipairs(st.conditions or {}) do
  conditions[c.type] = c
end

local function describe(c)
  local text = c.type .. " " .. c.status
  if c.reason ~= nil and c.reason ~= "" then text = text .. " (" .. c.reason .. ")" end
  if c.message ~= nil and c.message ~= "" then text = text .. ": " .. c.message end
  return text
end

local generation = obj.metadata.generation
if generation ~= nil and st.observedGeneration == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to check the plugin and the store"
  return hs
end
if generation ~= nil and st.observedGeneration < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to check generation " .. generation .. " (status is of generation " .. st.observedGeneration .. ")"
  return hs
end

local problems = {}
for _, name in ipairs({"PluginReady", "StoreReady"}) do
  local c = conditions[name]
  if c ~= nil and c.status == "False" then table.insert(problems, describe(c)) end
end
local scheduled = conditions["Scheduled"]
if scheduled ~= nil and scheduled.status == "False" and scheduled.reason == "InvalidSchedule" then
  table.insert(problems, describe(scheduled))
end
if #problems > 0 then
  hs.status = "Degraded"
  hs.message = table.concat(problems, "; ")
  return hs
end

local waiting = {}
for _, name in ipairs({"PluginReady", "StoreReady"}) do
  local c = conditions[name]
  if c == nil then
    table.insert(waiting, name)
  elseif c.status ~= "True" then
    table.insert(waiting, describe(c))
  end
end
if #waiting > 0 then
  hs.status = "Progressing"
  hs.message = "Waiting for " .. table.concat(waiting, ", ")
  return hs
end

hs.status = "Healthy"
hs.message = "Plugin and store ready"
if st.lastJob ~= nil and st.lastJob.name ~= nil then
  hs.message = hs.message .. "; last run " .. st.lastJob.name .. " " .. (st.lastJob.status or "")
end
if obj.spec ~= nil and obj.spec.schedule ~= nil then
  if obj.spec.schedule.suspend == true then
    hs.message = hs.message .. "; schedule suspended"
  elseif st.nextScheduleTime ~= nil then
    hs.message = hs.message .. "; next sync " .. st.nextScheduleTime
  end
end
return hs
