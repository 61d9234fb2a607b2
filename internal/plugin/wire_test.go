package plugin

import (
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/costops/cost-analysis-operator/internal/plugin/pluginpb"
)

// topFields are the field numbers and wire types at the top level of an encoded message.
func topFields(t *testing.T, b []byte) map[protowire.Number]protowire.Type {
	t.Helper()
	out := map[protowire.Number]protowire.Type{}
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			t.Fatalf("bad tag: %v", protowire.ParseError(n))
		}
		b = b[n:]
		m := protowire.ConsumeFieldValue(num, typ, b)
		if m < 0 {
			t.Fatalf("bad field %d: %v", num, protowire.ParseError(m))
		}
		b = b[m:]
		out[num] = typ
	}
	return out
}

// The field numbers are the wire format of SpaceONE's plugins: each case sets one
// field and checks the number and wire type it is encoded with.
func TestWireFieldNumbers(t *testing.T) {
	s := &structpb.Struct{Fields: map[string]*structpb.Value{"k": structpb.NewStringValue("v")}}
	bytes, fixed64 := protowire.BytesType, protowire.Fixed64Type
	cases := map[string]struct {
		msg proto.Message
		num protowire.Number
		typ protowire.Type
	}{
		"InitRequest.options is 1":                  {&pluginpb.InitRequest{Options: s}, 1, bytes},
		"InitRequest.domain_id is 2":                {&pluginpb.InitRequest{DomainId: "d"}, 2, bytes},
		"PluginVerifyRequest.options is 1":          {&pluginpb.PluginVerifyRequest{Options: s}, 1, bytes},
		"PluginVerifyRequest.secret_data is 2":      {&pluginpb.PluginVerifyRequest{SecretData: s}, 2, bytes},
		"PluginVerifyRequest.schema is 3":           {&pluginpb.PluginVerifyRequest{Schema: "x"}, 3, bytes},
		"PluginVerifyRequest.domain_id is 4":        {&pluginpb.PluginVerifyRequest{DomainId: "d"}, 4, bytes},
		"PluginInfo.metadata is 1":                  {&pluginpb.PluginInfo{Metadata: s}, 1, bytes},
		"GetTasksRequest.options is 1":              {&pluginpb.GetTasksRequest{Options: s}, 1, bytes},
		"GetTasksRequest.secret_data is 2":          {&pluginpb.GetTasksRequest{SecretData: s}, 2, bytes},
		"GetTasksRequest.schema is 3":               {&pluginpb.GetTasksRequest{Schema: "x"}, 3, bytes},
		"GetTasksRequest.start is 4":                {&pluginpb.GetTasksRequest{Start: "2024-01"}, 4, bytes},
		"GetTasksRequest.last_synchronized_at is 5": {&pluginpb.GetTasksRequest{LastSynchronizedAt: "t"}, 5, bytes},
		"GetTasksRequest.domain_id is 6":            {&pluginpb.GetTasksRequest{DomainId: "d"}, 6, bytes},
		"GetTasksRequest.linked_accounts is 7":      {&pluginpb.GetTasksRequest{LinkedAccounts: []*structpb.Struct{s}}, 7, bytes},
		"TasksInfo.tasks is 1":                      {&pluginpb.TasksInfo{Tasks: []*pluginpb.TaskInfo{{}}}, 1, bytes},
		"TasksInfo.changed is 2":                    {&pluginpb.TasksInfo{Changed: []*pluginpb.ChangedInfo{{}}}, 2, bytes},
		"TasksInfo.synced_accounts is 3":            {&pluginpb.TasksInfo{SyncedAccounts: []*pluginpb.SyncedAccountInfo{{}}}, 3, bytes},
		"TaskInfo.task_options is 1":                {&pluginpb.TaskInfo{TaskOptions: s}, 1, bytes},
		"TaskInfo.task_changed is 2":                {&pluginpb.TaskInfo{TaskChanged: &pluginpb.ChangedInfo{}}, 2, bytes},
		"ChangedInfo.start is 1":                    {&pluginpb.ChangedInfo{Start: "s"}, 1, bytes},
		"ChangedInfo.end is 2":                      {&pluginpb.ChangedInfo{End: "e"}, 2, bytes},
		"ChangedInfo.filter is 3":                   {&pluginpb.ChangedInfo{Filter: s}, 3, bytes},
		"SyncedAccountInfo.account_id is 1":         {&pluginpb.SyncedAccountInfo{AccountId: "a"}, 1, bytes},
		"SyncedAccountInfo.name is 2":               {&pluginpb.SyncedAccountInfo{Name: "n"}, 2, bytes},
		"GetLinkedAccountsRequest.options is 1":     {&pluginpb.GetLinkedAccountsRequest{Options: s}, 1, bytes},
		"GetLinkedAccountsRequest.schema is 2":      {&pluginpb.GetLinkedAccountsRequest{Schema: "x"}, 2, bytes},
		"GetLinkedAccountsRequest.secret_data is 3": {&pluginpb.GetLinkedAccountsRequest{SecretData: s}, 3, bytes},
		"GetLinkedAccountsRequest.domain_id is 21":  {&pluginpb.GetLinkedAccountsRequest{DomainId: "d"}, 21, bytes},
		"AccountsInfo.results is 1":                 {&pluginpb.AccountsInfo{Results: []*pluginpb.AccountInfo{{}}}, 1, bytes},
		"AccountInfo.account_id is 1":               {&pluginpb.AccountInfo{AccountId: "a"}, 1, bytes},
		"AccountInfo.name is 2":                     {&pluginpb.AccountInfo{Name: "n"}, 2, bytes},
		"GetDataRequest.options is 1":               {&pluginpb.GetDataRequest{Options: s}, 1, bytes},
		"GetDataRequest.secret_data is 2":           {&pluginpb.GetDataRequest{SecretData: s}, 2, bytes},
		"GetDataRequest.schema is 3":                {&pluginpb.GetDataRequest{Schema: "x"}, 3, bytes},
		"GetDataRequest.task_options is 4":          {&pluginpb.GetDataRequest{TaskOptions: s}, 4, bytes},
		"GetDataRequest.domain_id is 5":             {&pluginpb.GetDataRequest{DomainId: "d"}, 5, bytes},
		"CostsInfo.results is 1":                    {&pluginpb.CostsInfo{Results: []*pluginpb.CostInfo{{}}}, 1, bytes},
		"CostInfo.cost is 1":                        {&pluginpb.CostInfo{Cost: 1.5}, 1, fixed64},
		"CostInfo.usage_quantity is 2":              {&pluginpb.CostInfo{UsageQuantity: 2}, 2, fixed64},
		"CostInfo.usage_unit is 3":                  {&pluginpb.CostInfo{UsageUnit: "h"}, 3, bytes},
		"CostInfo.provider is 4":                    {&pluginpb.CostInfo{Provider: "p"}, 4, bytes},
		"CostInfo.region_code is 5":                 {&pluginpb.CostInfo{RegionCode: "r"}, 5, bytes},
		"CostInfo.product is 6":                     {&pluginpb.CostInfo{Product: "p"}, 6, bytes},
		"CostInfo.usage_type is 7":                  {&pluginpb.CostInfo{UsageType: "u"}, 7, bytes},
		"CostInfo.resource is 8":                    {&pluginpb.CostInfo{Resource: "r"}, 8, bytes},
		"CostInfo.tags is 12":                       {&pluginpb.CostInfo{Tags: s}, 12, bytes},
		"CostInfo.additional_info is 13":            {&pluginpb.CostInfo{AdditionalInfo: s}, 13, bytes},
		"CostInfo.data is 14":                       {&pluginpb.CostInfo{Data: s}, 14, bytes},
		"CostInfo.billed_date is 21":                {&pluginpb.CostInfo{BilledDate: "2024-01-31"}, 21, bytes},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			b, err := proto.MarshalOptions{Deterministic: true}.Marshal(tc.msg)
			if err != nil {
				t.Fatal(err)
			}
			got := topFields(t, b)
			if len(got) != 1 || got[tc.num] != tc.typ {
				t.Errorf("encoded fields %v, want only %d (wire type %d)", got, tc.num, tc.typ)
			}
		})
	}
}

// What the client sends is what the protocol names: the request a controller builds
// lands in the fields SpaceONE plugins read.
func TestGetTasksRequestOnTheWire(t *testing.T) {
	req := &pluginpb.GetTasksRequest{Schema: "s", Start: "2024-01", LastSynchronizedAt: "2024-01-02T00:00:00Z", DomainId: "ns"}
	req.LinkedAccounts = []*structpb.Struct{{Fields: map[string]*structpb.Value{"account_id": structpb.NewStringValue("a")}}}
	b, err := proto.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	for b := b; len(b) > 0; {
		num, typ, n := protowire.ConsumeTag(b)
		b = b[n:]
		v, m := protowire.ConsumeBytes(b)
		if typ != protowire.BytesType || m < 0 {
			t.Fatalf("field %d has wire type %d", num, typ)
		}
		b = b[m:]
		switch num {
		case 6:
			if string(v) != "ns" {
				t.Errorf("domain_id (6) = %q", v)
			}
		case 7:
			var s structpb.Struct
			if err := proto.Unmarshal(v, &s); err != nil || s.AsMap()["account_id"] != "a" {
				t.Errorf("linked_accounts (7) = %v, %v", s.AsMap(), err)
			}
		}
	}
}

func TestFullMethodNamesAreSnakeCase(t *testing.T) {
	for got, want := range map[string]string{
		pluginpb.DataSource_Init_FullMethodName:        "/spaceone.api.cost_analysis.plugin.DataSource/init",
		pluginpb.DataSource_Verify_FullMethodName:      "/spaceone.api.cost_analysis.plugin.DataSource/verify",
		pluginpb.Job_GetTasks_FullMethodName:           "/spaceone.api.cost_analysis.plugin.Job/get_tasks",
		pluginpb.Cost_GetLinkedAccounts_FullMethodName: "/spaceone.api.cost_analysis.plugin.Cost/get_linked_accounts",
		pluginpb.Cost_GetData_FullMethodName:           "/spaceone.api.cost_analysis.plugin.Cost/get_data",
	} {
		if got != want {
			t.Errorf("method %s, want %s", got, want)
		}
	}
}

func TestGetTasksAtScale(t *testing.T) {
	addr, _ := startPlugin(t)
	c := testClient(t, Options{Endpoint: addr})
	start := time.Now()
	res, err := c.GetTasks(testContext(t), GetTasksRequest{Options: map[string]any{"tasks": 5000}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Tasks) != 5000 || res.Tasks[4999].Options["index"] != float64(4999) {
		t.Errorf("%d tasks", len(res.Tasks))
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("5,000 tasks took %s", d)
	}
}
