package spaceone

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// The two APIs answer errors in their own documented bodies; every code, its HTTP
// status and its messages live in this file.
//
// SpaceONE cost-analysis v1 routes: python-core's REST layer
// (spaceone.core.fastapi.api) raises an HTTPException whose detail is
// {"code": <error class>, "message": <formatted message>}, so the body is
//
//	{"detail": {"code": "ERROR_NOT_FOUND", "message": "Resource cannot be found or access is denied. (job_id = x)"}}
//
// with the HTTP status mapped from the error's gRPC status code (INVALID_ARGUMENT
// 400, UNAUTHENTICATED 401, PERMISSION_DENIED 403, NOT_FOUND 404, INTERNAL 500).
//
// Job metering route: the metering API document's {"error_code": "...", "error_msg": "..."} with
// 12-character codes and English or Chinese messages (X-Language).

// SpaceONE error codes (python-core's spaceone.core.error and cost-analysis's
// error.job classes).
const (
	CodeRequiredParameter   = "ERROR_REQUIRED_PARAMETER"
	CodeInvalidParameter    = "ERROR_INVALID_PARAMETER"
	CodeNotFound            = "ERROR_NOT_FOUND"
	CodeJobState            = "ERROR_JOB_STATE"
	CodeAuthenticateFailure = "ERROR_AUTHENTICATE_FAILURE"
	CodePermissionDenied    = "ERROR_PERMISSION_DENIED"
	CodeUnknown             = "ERROR_UNKNOWN"
	// CodeMethodNotAllowed answers a route called with a method it does not take.
	CodeMethodNotAllowed = "ERROR_METHOD_NOT_ALLOWED"
)

// Error is an answer other than 200 of the cost-analysis routes.
type Error struct {
	Status  int
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// errorBody is the JSON body of an Error.
type errorBody struct {
	Detail errorDetail `json:"detail"`
}

type errorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func errRequired(key string) *Error {
	return &Error{http.StatusBadRequest, CodeRequiredParameter, fmt.Sprintf("Required parameter. (key = %s)", key)}
}

func errInvalid(key, reason string) *Error {
	return &Error{http.StatusBadRequest, CodeInvalidParameter, fmt.Sprintf("Parameter is invalid. (key = %s, reason = %s)", key, reason)}
}

func errNotFound(key, value string) *Error {
	return &Error{http.StatusNotFound, CodeNotFound, fmt.Sprintf("Resource cannot be found or access is denied. (%s = %s)", key, value)}
}

// errJobState: SpaceONE raises ERROR_JOB_STATE as an INTERNAL error (500); it is the
// caller's mistake, so it is answered 400 as FAILED_PRECONDITION maps in python-core.
func errJobState(state string) *Error {
	return &Error{http.StatusBadRequest, CodeJobState, fmt.Sprintf("Only running jobs can be canceled. (job_state = %s)", state)}
}

func errUnauthenticated(reason string) *Error {
	return &Error{http.StatusUnauthorized, CodeAuthenticateFailure, fmt.Sprintf("Authenticate failure. (message = %s)", reason)}
}

func errForbidden(a Access) *Error {
	return &Error{http.StatusForbidden, CodePermissionDenied, fmt.Sprintf("Permission denied. (verb = %s, resource = %s.%s, namespace = %s)", a.Verb, a.Resource, Group, a.Namespace)}
}

func errUnknown(message string) *Error {
	return &Error{http.StatusInternalServerError, CodeUnknown, message}
}

// asError turns any error into an *Error; errors that are not already one become
// ERROR_UNKNOWN without their text, which may name internals.
func asError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return errUnknown("The request could not be completed.")
}

// Language of the metering route's messages (the X-Language header).
type Language int

const (
	English Language = iota // en-us, the default
	Chinese                 // zh-cn
)

// languageOf reads X-Language: zh-cn (also zh_CN, zh) means Chinese, anything else English.
func languageOf(r *http.Request) Language {
	l := strings.ToLower(strings.ReplaceAll(strings.TrimSpace(r.Header.Get("X-Language")), "_", "-"))
	if l == "zh" || strings.HasPrefix(l, "zh-") {
		return Chinese
	}
	return English
}

// MeteringError is an answer other than 200 of the metering route.
type MeteringError struct {
	Status int
	Code   string
	// Arg fills the message's %s (a parameter name, an id); may be empty.
	Arg string
}

func (e *MeteringError) Error() string { return e.Code + ": " + e.Message(English) }

// Message is the error's text in the given language.
func (e *MeteringError) Message(l Language) string {
	m, ok := meteringMessages[e.Code]
	if !ok {
		m = meteringMessages[MeteringCodeInternal]
	}
	text := m[l]
	if strings.Contains(text, "%s") {
		text = fmt.Sprintf(text, e.Arg)
	}
	return text
}

// Metering error codes: 12 characters, as the metering API document's error_code.
const (
	MeteringCodeInvalidJobID     = "CAO.00400001"
	MeteringCodeInvalidProjectID = "CAO.00400002"
	MeteringCodeNoToken          = "CAO.00401001"
	MeteringCodeInvalidToken     = "CAO.00401002"
	MeteringCodeForbidden        = "CAO.00403001"
	MeteringCodeJobNotFound      = "CAO.00404001"
	MeteringCodeInternal         = "CAO.00500001"
)

// meteringMessages holds each metering code's message in English and Chinese.
var meteringMessages = map[string][2]string{
	MeteringCodeInvalidJobID: {
		"The value of parameter job_id is invalid.",
		"参数job_id的值无效。",
	},
	MeteringCodeInvalidProjectID: {
		"The value of parameter project_id is invalid.",
		"参数project_id的值无效。",
	},
	MeteringCodeNoToken: {
		"The request carries no token: set X-Auth-Token or Authorization: Bearer.",
		"请求未携带令牌：请设置X-Auth-Token或Authorization: Bearer。",
	},
	MeteringCodeInvalidToken: {
		"The token is invalid or has expired.",
		"令牌无效或已过期。",
	},
	MeteringCodeForbidden: {
		"You are not allowed to read job %s.",
		"您无权读取任务%s。",
	},
	MeteringCodeJobNotFound: {
		"Job %s does not exist.",
		"任务%s不存在。",
	},
	MeteringCodeInternal: {
		"The request could not be completed; try again later.",
		"请求未能完成，请稍后重试。",
	},
}

func meteringErr(status int, code, arg string) *MeteringError {
	return &MeteringError{Status: status, Code: code, Arg: arg}
}

// meteringBody is the metering API document's error body.
type meteringBody struct {
	ErrorCode string `json:"error_code"`
	ErrorMsg  string `json:"error_msg"`
}
