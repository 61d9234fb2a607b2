-- Argo CD health of a cost-analysis JobTask (cost-analysis.costops.dev/v1): one unit
-- of a Job, run as a batch Job. PENDING (or not yet admitted) and IN_PROGRESS are
-- Progressing, SUCCESS is Healthy, FAILURE, TIMEOUT and CANCELED are Degraded.
-- Only Argo CD's default Lua libraries (base, table): no os, string or math.
local hs = {}
local st = obj.status or {}
local state = st.status or ""

local generation = obj.metadata.generation
if generation ~= nil and st.observedGeneration ~= nil and st.observedGeneration < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. generation .. " (status is of generation " .. st.observedGeneration .. ")"
  return hs
end

if state == "" or state == "PENDING" then
  hs.status = "Progressing"
  hs.message = "PENDING: waiting for a place under the Job's parallelism"
  return hs
end

if state == "IN_PROGRESS" then
  hs.status = "Progressing"
  hs.message = "IN_PROGRESS"
  if st.batchJobName ~= nil and st.batchJobName ~= "" then
    hs.message = hs.message .. ": batch Job " .. st.batchJobName
    if (st.attempts or 0) > 1 then hs.message = hs.message .. ", attempt " .. st.attempts end
  end
  return hs
end

if state == "SUCCESS" then
  hs.status = "Healthy"
  hs.message = "SUCCESS: " .. (st.createdCount or 0) .. " records created"
  return hs
end

if state == "FAILURE" or state == "TIMEOUT" or state == "CANCELED" then
  hs.status = "Degraded"
  hs.message = state
  if st.errorCode ~= nil and st.errorCode ~= "" then hs.message = hs.message .. ": " .. st.errorCode end
  if st.errorMessage ~= nil and st.errorMessage ~= "" then hs.message = hs.message .. ": " .. st.errorMessage end
  return hs
end

hs.status = "Unknown"
hs.message = "Unknown task status " .. state
return hs
