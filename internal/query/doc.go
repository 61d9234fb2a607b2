// Package query is the SpaceONE Query and StatisticsQuery engine over in-memory records.
//
// A record is a map[string]any as produced by encoding/json: values are
// strings, float64 numbers, bools, nil, []any and map[string]any. Keys used by
// queries are dotted paths into nested maps ("options.account_id"); a path
// that crosses a list matches any element of that list, as in MongoDB.
//
// Query is what a SpaceONE "list" API takes: filter / filter_or conditions,
// keyword search, sort, page, only, minimal and count_only. StatisticsQuery is
// what a "stat" API takes: filter / filter_or, distinct, an aggregate pipeline
// (unwind, group, count, sort, limit, skip, match, project) and page.
//
// The semantics follow spaceone.core.model.mongo_model of cloudforet-io/
// python-core (the MongoDB-backed implementation) as closely as an in-memory
// engine can; where that implementation is unclear or inconsistent the choice
// made here is documented on the relevant type or function.
//
// RunTable takes a Table, which reads records through typed columns and an
// order (Compare), without a map per record, for callers that hold many typed
// objects. Run takes records as maps: it runs them as a Table without columns,
// in input order, through the same executor, and gives the same answers.
//
// Every malformed query is reported as an *Error whose Key names the offending
// part of the query (for example "query.filter[0].o"); IsInvalid tells such
// errors apart so that an HTTP layer can answer them with a 400. No input,
// however malformed, deeply nested or large, makes the package panic.
//
// Parsed queries are immutable and safe for concurrent use. Run never
// modifies the records it is given; results that are not trimmed by "only"
// (or built by an aggregation stage) are the caller's own record maps, not
// copies, and must be treated as read-only.
//
// The files follow the engine's parts: query.go (list queries), filter.go
// (conditions), sort.go, path.go (dotted keys), compare.go (the order and
// equality of values), datetime.go, params.go (reading the JSON parameters),
// stat_parse.go, stat_stages.go and stat_accumulators.go (statistics queries),
// table.go (the executor) and records.go (Run over maps).
package query
