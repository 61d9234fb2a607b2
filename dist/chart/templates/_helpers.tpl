{{/* The prefix of every object's name, as config/default's namePrefix. */}}
{{- define "cost-analysis.prefix" -}}cost-analysis-{{- end }}

{{/* Labels of the manager's pods, and the selector of its Deployment, Services and PodDisruptionBudget. */}}
{{- define "cost-analysis.selectorLabels" -}}
control-plane: controller-manager
app.kubernetes.io/name: cost-analysis-operator
{{- end }}

{{/* Every object's labels: the chart's and Helm's, and part-of as config/ sets it. */}}
{{- define "cost-analysis.helmLabels" -}}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: cost-analysis-operator
{{- end }}

{{/* The ServiceAccount as an RBAC subject. */}}
{{- define "cost-analysis.subject" -}}
- kind: ServiceAccount
  name: {{ include "cost-analysis.prefix" . }}controller-manager
  namespace: {{ .Release.Namespace }}
{{- end }}
