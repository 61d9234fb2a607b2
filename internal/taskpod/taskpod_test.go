package taskpod

import (
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"testing"
)

func TestParseTask(t *testing.T) {
	cases := map[string]struct {
		file    string
		want    Task
		wantErr string
	}{
		"a task with its window": {
			file: `{"job_task_id":"run-3","job_task_uid":"u-3","task_options":{"month":"2024-02"},"task_changed":{"start":"2024-02"}}`,
			want: Task{JobTaskID: "run-3", JobTaskUID: "u-3", Options: json.RawMessage(`{"month":"2024-02"}`), Changed: json.RawMessage(`{"start":"2024-02"}`)},
		},
		"a task without task_changed": {
			file: `{"job_task_id":"run-3","job_task_uid":"u-3","task_options":{}}`,
			want: Task{JobTaskID: "run-3", JobTaskUID: "u-3", Options: json.RawMessage(`{}`)},
		},
		"a null task_changed is none": {
			file: `{"job_task_id":"run-3","job_task_uid":"u-3","task_options":{},"task_changed":null}`,
			want: Task{JobTaskID: "run-3", JobTaskUID: "u-3", Options: json.RawMessage(`{}`)},
		},
		"white space around the values": {
			file: "{\n  \"job_task_id\": \"run-3\",\n  \"job_task_uid\": \"u-3\",\n  \"task_options\": { }\n}\n",
			want: Task{JobTaskID: "run-3", JobTaskUID: "u-3", Options: json.RawMessage(`{ }`)},
		},
		"not JSON":                 {file: `{"job_task_id":`, wantErr: "not a task"},
		"an empty file":            {file: ``, wantErr: "not a task"},
		"a JSON array":             {file: `[]`, wantErr: "not a task"},
		"a field it does not know": {file: `{"job_task_id":"a","job_task_uid":"u","task_options":{},"index":3}`, wantErr: `unknown field "index"`},
		"no job_task_id":           {file: `{"job_task_uid":"u","task_options":{}}`, wantErr: "job_task_id"},
		"no job_task_uid":          {file: `{"job_task_id":"a","task_options":{}}`, wantErr: "job_task_uid"},
		"no task_options":          {file: `{"job_task_id":"a","job_task_uid":"u"}`, wantErr: "task_options is not a JSON object"},
		"null task_options":        {file: `{"job_task_id":"a","job_task_uid":"u","task_options":null}`, wantErr: "task_options is not a JSON object"},
		"task_options an array":    {file: `{"job_task_id":"a","job_task_uid":"u","task_options":[{}]}`, wantErr: "task_options is not a JSON object"},
		"task_options a string":    {file: `{"job_task_id":"a","job_task_uid":"u","task_options":"{}"}`, wantErr: "task_options is not a JSON object"},
		"an id that is a number":   {file: `{"job_task_id":3,"job_task_uid":"u","task_options":{}}`, wantErr: "not a task"},
		"text after the task":      {file: `{"job_task_id":"a","job_task_uid":"u","task_options":{}}junk`, wantErr: "more than one JSON value"},
		"two tasks":                {file: `{"job_task_id":"a","job_task_uid":"u","task_options":{}} {}`, wantErr: "more than one JSON value"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := ParseTask([]byte(tc.file))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParseTask = %+v, %v; want an error saying %q", got, err, tc.wantErr)
				}
				if got.JobTaskID != "" || got.JobTaskUID != "" {
					t.Errorf("a refused task file gave an identity: %+v", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.JobTaskID != tc.want.JobTaskID || got.JobTaskUID != tc.want.JobTaskUID ||
				string(got.Options) != string(tc.want.Options) || string(got.Changed) != string(tc.want.Changed) {
				t.Errorf("ParseTask = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestATaskFileReadsBackAsItsTask(t *testing.T) {
	for name, task := range map[string]Task{
		"with a window":    {JobTaskID: "run-0", JobTaskUID: "u", Options: json.RawMessage(`{"a":[1,"x"]}`), Changed: json.RawMessage(`{"start":"2024-01","end":"2024-02","filter":{"k":"v"}}`)},
		"without a window": {JobTaskID: "run-99999", JobTaskUID: "u", Options: json.RawMessage(`{}`)},
	} {
		t.Run(name, func(t *testing.T) {
			file := task.Encode()
			if task.Changed == nil && strings.Contains(file, "task_changed") {
				t.Errorf("a task without a window writes task_changed: %s", file)
			}
			got, err := ParseTask([]byte(file))
			if err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			if got.JobTaskID != task.JobTaskID || got.JobTaskUID != task.JobTaskUID ||
				string(got.Options) != string(task.Options) || string(got.Changed) != string(task.Changed) {
				t.Errorf("read back %+v from %s, want %+v", got, file, task)
			}
		})
	}
}

func TestPodTaskIndex(t *testing.T) {
	const first = "example.com/first-task-index"
	cases := map[string]struct {
		annotations map[string]string
		want        int32
		ok          bool
	}{
		"the first batch Job's first pod":   {map[string]string{AnnotationCompletionIndex: "0", first: "0"}, 0, true},
		"a later batch Job's pod":           {map[string]string{AnnotationCompletionIndex: "7", first: "500"}, 507, true},
		"the last index int32 holds":        {map[string]string{AnnotationCompletionIndex: "1", first: strconv.Itoa(math.MaxInt32 - 1)}, math.MaxInt32, true},
		"an index beyond int32":             {map[string]string{AnnotationCompletionIndex: "2", first: strconv.Itoa(math.MaxInt32 - 1)}, 0, false},
		"no completion index":               {map[string]string{first: "500"}, 0, false},
		"no first task index":               {map[string]string{AnnotationCompletionIndex: "7"}, 0, false},
		"no annotations":                    {nil, 0, false},
		"a negative completion index":       {map[string]string{AnnotationCompletionIndex: "-1", first: "5"}, 0, false},
		"a negative first task index":       {map[string]string{AnnotationCompletionIndex: "1", first: "-5"}, 0, false},
		"a completion index that is no int": {map[string]string{AnnotationCompletionIndex: "one", first: "5"}, 0, false},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, ok := PodTaskIndex(tc.annotations, first)
			if got != tc.want || ok != tc.ok {
				t.Errorf("PodTaskIndex = %d, %v; want %d, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestParseResult(t *testing.T) {
	cases := map[string]struct {
		msg     string
		count   int64
		code    string
		wantErr string
	}{
		"a success":                       {msg: `{"created_count":12,"collected_bytes":3400}`, count: 12},
		"a success of no rows":            {msg: "{\"created_count\":0}\n", count: 0},
		"a failure":                       {msg: `{"error_code":"ERROR_GET_DATA","error_message":"quota"}`, code: "ERROR_GET_DATA"},
		"no message":                      {msg: "  \n", wantErr: ErrNoMessage.Error()},
		"a message that is no JSON":       {msg: "panic: nil map", wantErr: "not a JSON result object"},
		"a success without its count":     {msg: `{"collected_bytes":3}`, wantErr: "no created_count"},
		"a negative count":                {msg: `{"created_count":-1}`, wantErr: "negative"},
		"negative bytes":                  {msg: `{"created_count":1,"collected_bytes":-1}`, wantErr: "negative"},
		"a count that is not a number":    {msg: `{"created_count":"12"}`, wantErr: "not a JSON result object"},
		"a failure with its message only": {msg: `{"error_message":"boom"}`, code: ""},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			r, err := ParseResult(tc.msg)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParseResult = %+v, %v; want an error saying %q", r, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r.Failed() {
				if r.ErrorCode != tc.code || r.CreatedCount != nil {
					t.Errorf("failure %+v, want code %q and no count", r, tc.code)
				}
				return
			}
			if r.CreatedCount == nil || *r.CreatedCount != tc.count {
				t.Errorf("result %+v, want created_count %d", r, tc.count)
			}
		})
	}
}

func TestAResultFitsTheTerminationMessage(t *testing.T) {
	r := Result{ErrorCode: "ERROR_GET_DATA", ErrorMessage: strings.Repeat("é", MaxMessageBytes)}
	msg := r.Encode()
	if len(msg) > MaxMessageBytes {
		t.Fatalf("the message is %d bytes, over %d", len(msg), MaxMessageBytes)
	}
	got, err := ParseResult(msg)
	if err != nil || got.ErrorCode != "ERROR_GET_DATA" || !strings.HasSuffix(got.ErrorMessage, "...") {
		t.Errorf("the cut message reads back as %+v, %v", got, err)
	}
}
