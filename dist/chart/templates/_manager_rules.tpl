{{/*
The manager's RBAC rules: those of config/rbac/role.yaml, which controller-gen
writes from the controllers' kubebuilder markers (files/manager-role.yaml is a
link to it, as crds/ is to config/crd/bases, so the chart cannot drift from them).
*/}}
{{- define "cost-analysis.managerRules" -}}
rules:
{{ (.Files.Get "files/manager-role.yaml" | fromYaml).rules | toYaml }}
{{- end }}
