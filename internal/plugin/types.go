package plugin

import (
	"encoding/json"
	"fmt"

	"google.golang.org/protobuf/types/known/structpb"
)

// The methods of the protocol, as they appear in errors and metrics.
const (
	MethodInit              = "DataSource.init"
	MethodVerify            = "DataSource.verify"
	MethodGetTasks          = "Job.get_tasks"
	MethodGetLinkedAccounts = "Cost.get_linked_accounts"
	MethodGetData           = "Cost.get_data"
)

// VerifyRequest is the input of DataSource.verify.
type VerifyRequest struct {
	Options    map[string]any
	SecretData map[string]any
	Schema     string
	DomainID   string
}

// GetTasksRequest is the input of Job.get_tasks.
type GetTasksRequest struct {
	Options    map[string]any
	SecretData map[string]any
	Schema     string
	// Start is the first month to collect ("YYYY-MM"), when the run names one.
	Start string
	// LastSynchronizedAt is the RFC 3339 time of the DataSource's last successful run.
	LastSynchronizedAt string
	DomainID           string
	LinkedAccounts     []map[string]any
}

// TasksResult is what Job.get_tasks returned, validated.
type TasksResult struct {
	Tasks []Task
	// Changed are the windows of data the whole run replaces.
	Changed        []Changed
	SyncedAccounts []Account
}

// Task is one task of a run.
type Task struct {
	// Options is the task's task_options; never nil.
	Options map[string]any
	// Changed is the window of data this task alone replaces, if the plugin gave one.
	Changed *Changed
}

// Changed is a window of data that a run or task replaces. Start and End are
// "YYYY-MM", "YYYY-MM-DD" or RFC 3339 times; End may be empty (open-ended).
type Changed struct {
	Start  string         `json:"start"`
	End    string         `json:"end,omitempty"`
	Filter map[string]any `json:"filter,omitempty"`
}

// Account is an account of the billing source.
type Account struct {
	AccountID string `json:"account_id"`
	Name      string `json:"name,omitempty"`
}

// GetLinkedAccountsRequest is the input of Cost.get_linked_accounts.
type GetLinkedAccountsRequest struct {
	Options    map[string]any
	SecretData map[string]any
	Schema     string
	DomainID   string
}

// GetDataRequest is the input of Cost.get_data.
type GetDataRequest struct {
	Options    map[string]any
	SecretData map[string]any
	Schema     string
	// TaskOptions is the task_options get_tasks returned for the task.
	TaskOptions map[string]any
	DomainID    string
}

// CostRecord is one cost record (the protocol's CostInfo), decoded and validated
// as CostRecordFromInfo says. Its JSON form uses the protocol's field names.
// Tags, AdditionalInfo and Data are the Structs as JSON objects; nil when the
// plugin did not send them.
type CostRecord struct {
	Cost           float64         `json:"cost"`
	UsageQuantity  float64         `json:"usage_quantity"`
	UsageUnit      string          `json:"usage_unit,omitempty"`
	Provider       string          `json:"provider,omitempty"`
	RegionCode     string          `json:"region_code,omitempty"`
	Product        string          `json:"product,omitempty"`
	UsageType      string          `json:"usage_type,omitempty"`
	Resource       string          `json:"resource,omitempty"`
	Tags           json.RawMessage `json:"tags,omitempty"`
	AdditionalInfo json.RawMessage `json:"additional_info,omitempty"`
	Data           json.RawMessage `json:"data,omitempty"`
	// BilledDate is "YYYY-MM-DD".
	BilledDate string `json:"billed_date"`
}

// toStruct encodes a map as a Struct; nil becomes an empty Struct, since plugins
// expect their options and secret data to be objects. Values that structpb does not
// take directly ([]string, map[string]string, structs, ...) go through JSON.
func toStruct(field string, m map[string]any) (*structpb.Struct, error) {
	if m == nil {
		return &structpb.Struct{Fields: map[string]*structpb.Value{}}, nil
	}
	s, err := structpb.NewStruct(m)
	if err == nil {
		return s, nil
	}
	b, jerr := json.Marshal(m)
	if jerr != nil {
		return nil, fmt.Errorf("%s cannot be encoded: %w", field, jerr)
	}
	var generic map[string]any
	if jerr := json.Unmarshal(b, &generic); jerr != nil {
		return nil, fmt.Errorf("%s cannot be encoded: %w", field, jerr)
	}
	if s, err = structpb.NewStruct(generic); err != nil {
		return nil, fmt.Errorf("%s cannot be encoded: %w", field, err)
	}
	return s, nil
}

// fromStruct decodes a Struct; an absent one is nil. Numbers become float64, as
// with encoding/json.
func fromStruct(s *structpb.Struct) map[string]any {
	if s == nil {
		return nil
	}
	return s.AsMap()
}
