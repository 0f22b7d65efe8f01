{{/* Names and labels. */}}
{{- define "remediator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "remediator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "remediator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "remediator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "remediator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "remediator.labels" -}}
helm.sh/chart: {{ include "remediator.chart" . }}
{{ include "remediator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "remediator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "remediator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "remediator.image" -}}
{{- $tag := .Values.image.tag | default .Chart.AppVersion }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/* The Secret holding the webhook credentials: yours, or the one the chart generates. */}}
{{- define "remediator.authSecretName" -}}
{{- .Values.auth.existingSecret | default (printf "%s-auth" (include "remediator.fullname" .)) }}
{{- end }}

{{- define "remediator.runbooksConfigMapName" -}}
{{- .Values.runbooks.existingConfigMap | default (printf "%s-runbooks" (include "remediator.fullname" .)) }}
{{- end }}

{{/* Where things live in the container. */}}
{{- define "remediator.configPath" -}}/etc/remediator/config/remediator.yaml{{- end }}
{{- define "remediator.runbooksDir" -}}/etc/remediator/runbooks{{- end }}
{{- define "remediator.dataDir" -}}/data{{- end }}

{{/*
Refuse values that cannot work, with a message that says what to do instead.
*/}}
{{- define "remediator.validate" -}}
{{- $cfg := .Values.config | default (dict) }}
{{- range $key := list "host" "port" }}
{{- if hasKey (get $cfg "server" | default (dict)) $key }}
{{- fail (printf "config.server.%s is set by the chart (it listens on 0.0.0.0:%v); use service.port for the Service" $key $.Values.containerPort) }}
{{- end }}
{{- end }}
{{- if hasKey (get $cfg "store" | default (dict)) "url" }}
{{- fail "config.store.url is set by the chart: SQLite on the data volume, or store.postgres.existingSecret for a PostgreSQL DSN" }}
{{- end }}
{{- if hasKey (get $cfg "runbooks" | default (dict)) "dir" }}
{{- fail "config.runbooks.dir is set by the chart: use runbooks.builtin, runbooks.inline or runbooks.existingConfigMap" }}
{{- end }}
{{- range $section, $keys := dict "auth" (list "bearer_token" "password") "slack" (list "bot_token" "signing_secret") }}
{{- range $key := $keys }}
{{- if hasKey (get $cfg $section | default (dict)) $key }}
{{- fail (printf "config.%s.%s would put a secret into a ConfigMap; reference a Secret with %s.existingSecret instead" $section $key $section) }}
{{- end }}
{{- end }}
{{- end }}
{{- if and (gt (int .Values.replicaCount) 1) (not .Values.store.postgres.enabled) }}
{{- fail (printf "replicaCount: %v needs store.postgres.enabled: SQLite has a single writer, so only one replica may run" .Values.replicaCount) }}
{{- end }}
{{- if and .Values.store.postgres.enabled (not .Values.store.postgres.existingSecret) }}
{{- fail "store.postgres.enabled needs store.postgres.existingSecret: a Secret whose key store.postgres.dsnKey holds the DSN" }}
{{- end }}
{{- if and (not .Values.auth.tokenKey) (not .Values.auth.passwordKey) (not (dig "auth" "insecure_no_auth" false $cfg)) }}
{{- fail "auth: set auth.tokenKey (bearer token) or auth.passwordKey with config.auth.username (basic auth); the server refuses to start without credentials" }}
{{- end }}
{{- if and .Values.auth.passwordKey (not (dig "auth" "username" "" $cfg)) }}
{{- fail "auth.passwordKey needs config.auth.username" }}
{{- end }}
{{- if and .Values.auth.passwordKey (not .Values.auth.existingSecret) }}
{{- fail "auth.passwordKey needs auth.existingSecret: the chart only generates a bearer token" }}
{{- end }}
{{- if and (not .Values.runbooks.existingConfigMap) (not .Values.runbooks.builtin) (not .Values.runbooks.inline) }}
{{- fail "runbooks: no runbooks at all; set runbooks.builtin, runbooks.inline or runbooks.existingConfigMap" }}
{{- end }}
{{- end }}

{{/*
remediator.yaml: the user's config with the keys the chart owns.
*/}}
{{- define "remediator.config" -}}
{{- $cfg := deepCopy (.Values.config | default (dict)) }}
{{- $owned := dict
  "server" (dict "host" "0.0.0.0" "port" (int .Values.containerPort))
  "runbooks" (dict "dir" (include "remediator.runbooksDir" .))
}}
{{- if not .Values.store.postgres.enabled }}
{{- $_ := set $owned "store" (dict "url" (printf "sqlite+aiosqlite:///%s/remediator.db" (include "remediator.dataDir" .))) }}
{{- end }}
{{- toYaml (mustMergeOverwrite $cfg $owned) }}
{{- end }}

{{/*
The ClusterRole/Role rules for the actions in rbac.actions (and, with rbac.context, the
reads of context capture), merged the way
`remediator rbac` merges them: verbs united per (apiGroup, resource), then resources
with the same verbs grouped, everything sorted. files/rbac-actions.yaml holds each
action's own rules (regenerate it with `python -m tests.chart.sync`).
*/}}
{{- define "remediator.rbacRules" -}}
{{- $catalog := .Files.Get "files/rbac-actions.yaml" | fromYaml }}
{{- $rules := list }}
{{- range $action := .Values.rbac.actions }}
{{- if not (hasKey $catalog $action) }}
{{- fail (printf "rbac.actions: unknown action %q (known: %s)" $action (keys $catalog | sortAlpha | join ", ")) }}
{{- end }}
{{- $rules = concat $rules (get $catalog $action) }}
{{- end }}
{{- if .Values.rbac.context }}
{{- $rules = concat $rules (.Files.Get "files/rbac-context.yaml" | fromYaml).rules }}
{{- end }}
{{- $verbs := dict }}
{{- range $rule := $rules }}
{{- range $group := $rule.apiGroups }}
{{- range $resource := $rule.resources }}
{{- $key := printf "%s %s" $group $resource }}
{{- $_ := set $verbs $key (concat (get $verbs $key | default (list)) $rule.verbs | uniq | sortAlpha) }}
{{- end }}
{{- end }}
{{- end }}
{{- $byVerbs := dict }}
{{- range $key := keys $verbs | sortAlpha }}
{{- $parts := splitList " " $key }}
{{- $vkey := printf "%s %s" (index $parts 0) (get $verbs $key | join ",") }}
{{- $_ := set $byVerbs $vkey (append (get $byVerbs $vkey | default (list)) (index $parts 1)) }}
{{- end }}
{{- $rules = list }}
{{- range $vkey := keys $byVerbs | sortAlpha }}
{{- $parts := splitList " " $vkey }}
{{- $rules = append $rules (dict "apiGroups" (list (index $parts 0)) "resources" (get $byVerbs $vkey) "verbs" (splitList "," (index $parts 1))) }}
{{- end }}
{{- if $rules }}
{{- toYaml $rules }}
{{- else }}
[]
{{- end }}
{{- end }}
