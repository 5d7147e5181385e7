{{/* <release>-scaler, or fullnameOverride. */}}
{{- define "klag.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-scaler" .Release.Name | trunc 52 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "klag.selectorLabels" -}}
app.kubernetes.io/name: klag-scaler
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "klag.labels" -}}
{{ include "klag.selectorLabels" . }}
app.kubernetes.io/component: scaler
app.kubernetes.io/part-of: klag
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "klag.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{- define "klag.tlsSecretName" -}}
{{- .Values.tls.secretName | default (printf "%s-tls" (include "klag.fullname" .)) -}}
{{- end -}}

{{- define "klag.tlsServerName" -}}
{{- .Values.tls.serverName | default (printf "%s-headless.%s.svc.cluster.local" (include "klag.fullname" .) .Release.Namespace) -}}
{{- end -}}

{{/* The klag-health exec probe with the TLS certificates (Kubernetes' gRPC probes speak no TLS). */}}
{{- define "klag.tlsProbeCommand" -}}
exec:
  command:
    - /usr/local/bin/klag-health
    - --address
    - {{ printf "127.0.0.1:%d" (int .Values.grpc.port) }}
    - --tls-ca
    - /etc/klag/tls/ca.crt
    - --tls-cert
    - /etc/klag/tls/tls.crt
    - --tls-key
    - /etc/klag/tls/tls.key
    - --tls-server-name
    - {{ include "klag.tlsServerName" . }}
{{- end -}}

{{- define "klag.probeAction" -}}
{{- if .Values.tls.enabled -}}
{{ include "klag.tlsProbeCommand" . }}
{{- else -}}
grpc:
  port: {{ .Values.grpc.port }}
{{- end -}}
{{- end -}}

{{/* Profile names, validated: a Secret name part and a directory name. */}}
{{- define "klag.checkProfiles" -}}
{{- range $name, $p := .Values.profiles -}}
{{- if not (regexMatch "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$" $name) -}}
{{- fail (printf "profiles.%s: a profile name is lower-case letters, digits and '-'" $name) -}}
{{- end -}}
{{- if and $p.existingSecret $p.data -}}
{{- fail (printf "profiles.%s: give data or existingSecret, not both" $name) -}}
{{- end -}}
{{- if and (not $p.existingSecret) (not (index ($p.data | default dict) "allowedNamespaces")) -}}
{{- fail (printf "profiles.%s.data.allowedNamespaces is required (namespaces that may use the profile, or \"*\")" $name) -}}
{{- end -}}
{{- end -}}
{{- end -}}
