-- Argo CD health of a cost-analysis Job (cost-analysis.costops.dev/v1): one collection
-- run. IN_PROGRESS and not yet picked up are Progressing, SUCCESS is Healthy, FAILURE,
-- TIMEOUT and CANCELED are Degraded (a run never resumes, so it is never Suspended).
-- Only Argo CD's default Lua libraries (base, table): no os, string or math.
local hs = {}
local st = obj.status or {}
local state = st.status or ""

local function progress()
  local total = st.totalTasks or 0
  local text = (total - (st.remainedTasks or 0)) .. "/" .. total .. " tasks done"
  local tasks = st.tasks or {}
  local extra = {}
  if (tasks.inProgress or 0) > 0 then table.insert(extra, tasks.inProgress .. " running") end
  if (tasks.pending or 0) > 0 then table.insert(extra, tasks.pending .. " pending") end
  if (tasks.failure or 0) > 0 then table.insert(extra, tasks.failure .. " failed") end
  if (tasks.timeout or 0) > 0 then table.insert(extra, tasks.timeout .. " timed out") end
  if (tasks.canceled or 0) > 0 then table.insert(extra, tasks.canceled .. " canceled") end
  if #extra > 0 then text = text .. " (" .. table.concat(extra, ", ") .. ")" end
  return text
end

local function errorText(code, message)
  if code ~= nil and code ~= "" and message ~= nil and message ~= "" then return code .. ": " .. message end
  if code ~= nil and code ~= "" then return code end
  return message or ""
end

local function condition(name)
  for _, c in ipairs(st.conditions or {}) do
    if c.type == name then return c end
  end
  return nil
end

if state == "" then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to pick the run up"
  return hs
end

local generation = obj.metadata.generation
local observed = st.observedGeneration or 0
if generation ~= nil and observed < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. generation .. " (status is of generation " .. observed .. "); " .. state
  return hs
end

if state == "IN_PROGRESS" then
  hs.status = "Progressing"
  local ending = st.ending
  if ending ~= nil and ending.status ~= nil then
    local verb = "rolling back its records"
    if ending.status == "SUCCESS" then verb = "committing its records" end
    hs.message = "IN_PROGRESS: ending " .. ending.status .. ", " .. verb
    local err = errorText(ending.errorCode, ending.errorMessage)
    if err ~= "" then hs.message = hs.message .. ": " .. err end
    return hs
  end
  if obj.spec ~= nil and obj.spec.cancel == true then
    hs.message = "IN_PROGRESS: canceling; " .. progress()
    return hs
  end
  local planned = condition("Planned")
  if planned ~= nil and planned.status ~= "True" then
    hs.message = "IN_PROGRESS: planning (" .. planned.reason .. ")"
    if planned.message ~= nil and planned.message ~= "" then hs.message = hs.message .. ": " .. planned.message end
    return hs
  end
  hs.message = "IN_PROGRESS: " .. progress()
  return hs
end

if state == "SUCCESS" then
  hs.status = "Healthy"
  hs.message = "SUCCESS: " .. progress() .. ", " .. (st.createdCount or 0) .. " records created"
  return hs
end

if state == "FAILURE" or state == "TIMEOUT" or state == "CANCELED" then
  hs.status = "Degraded"
  local err = errorText(st.errorCode, st.errorMessage)
  hs.message = state
  if err ~= "" then hs.message = hs.message .. ": " .. err end
  hs.message = hs.message .. "; " .. progress()
  return hs
end

hs.status = "Unknown"
hs.message = "Unknown run status " .. state
return hs
