package spaceone

import (
	"errors"
	"net/http"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"

	costv1 "github.com/costops/cost-analysis-operator/api/v1"
	"github.com/costops/cost-analysis-operator/internal/metering"
)

// maxJobName is the longest Job name the CRD admits.
const maxJobName = 52

// serveMetering answers GET /v5/{project_id}/jobs/{job_id}/metering.
func (s *Server) serveMetering(w http.ResponseWriter, r *http.Request) {
	lang := languageOf(r)
	info, err := s.metering(r)
	if err != nil {
		var me *MeteringError
		if !errors.As(err, &me) {
			s.log.Error(err, "Metering request failed", "path", r.URL.Path)
			me = meteringErr(http.StatusInternalServerError, MeteringCodeInternal, "")
		}
		s.log.V(1).Info("Metering request refused", "path", r.URL.Path, "code", me.Code)
		writeJSON(w, me.Status, meteringBody{ErrorCode: me.Code, ErrorMsg: me.Message(lang)})
		return
	}
	writeJSON(w, http.StatusOK, info)
}

func (s *Server) metering(r *http.Request) (*metering.Info, error) {
	ctx := r.Context()
	token := bearerToken(r)
	if token == "" {
		return nil, meteringErr(http.StatusUnauthorized, MeteringCodeNoToken, "")
	}
	user, err := s.auth.Authenticate(ctx, token)
	if errors.Is(err, ErrUnauthenticated) {
		return nil, meteringErr(http.StatusUnauthorized, MeteringCodeInvalidToken, "")
	}
	if err != nil {
		return nil, err
	}
	project, jobID := r.PathValue("project_id"), r.PathValue("job_id")
	if len(validation.IsDNS1123Label(project)) > 0 {
		return nil, meteringErr(http.StatusBadRequest, MeteringCodeInvalidProjectID, "")
	}
	if len(jobID) > maxJobName || len(validation.IsDNS1123Subdomain(jobID)) > 0 {
		return nil, meteringErr(http.StatusBadRequest, MeteringCodeInvalidJobID, "")
	}
	ok, err := s.auth.Authorize(ctx, user, Access{Verb: "get", Resource: ResourceJobs, Namespace: project, Name: jobID})
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, meteringErr(http.StatusForbidden, MeteringCodeForbidden, jobID)
	}
	var j costv1.Job
	if err := s.reader.Get(ctx, types.NamespacedName{Namespace: project, Name: jobID}, &j); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, meteringErr(http.StatusNotFound, MeteringCodeJobNotFound, jobID)
		}
		return nil, err
	}
	return &metering.Info{ProductInfoList: metering.Products(&j)}, nil
}
