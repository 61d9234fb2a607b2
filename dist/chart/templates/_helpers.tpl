{{/* The prefix of every object's name, as config/default's namePrefix. */}}
{{- define "cost-analysis.prefix" -}}cost-analysis-{{- end }}

{{/* Labels of the manager's pods, and the selector of its Deployment, Services and PodDisruptionBudget. */}}
{{- define "cost-analysis.selectorLabels" -}}
control-plane: controller-manager
app.kubernetes.io/name: cost-analysis-operator
{{- end }}

{{/* What Helm adds to every object's labels. */}}
{{- define "cost-analysis.helmLabels" -}}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* The ServiceAccount as an RBAC subject. */}}
{{- define "cost-analysis.subject" -}}
- kind: ServiceAccount
  name: {{ include "cost-analysis.prefix" . }}controller-manager
  namespace: {{ .Release.Namespace }}
{{- end }}
