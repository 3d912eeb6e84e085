package deploy

import (
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// KEDA's objects, mirrored from its CRDs (github.com/kedacore/keda,
// apis/keda/v1alpha1, as of v2.17, the first release with the temporal
// scaler) for the fields clozeloop's manifests may use, so that they decode
// strictly without KEDA's Go module (which brings controller-runtime). A
// field KEDA has but these types lack fails the decode: add it here with
// the same JSON name when a manifest needs it.

// KEDAAPIVersion is the API version of ScaledObject and TriggerAuthentication.
const KEDAAPIVersion = "keda.sh/v1alpha1"

// ScaledObject is KEDA's ScaledObject.
type ScaledObject struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              ScaledObjectSpec `json:"spec"`
}

// ScaledObjectSpec is the spec of a ScaledObject.
type ScaledObjectSpec struct {
	ScaleTargetRef        *ScaleTarget    `json:"scaleTargetRef"`
	PollingInterval       *int32          `json:"pollingInterval,omitempty"`
	InitialCooldownPeriod *int32          `json:"initialCooldownPeriod,omitempty"`
	CooldownPeriod        *int32          `json:"cooldownPeriod,omitempty"`
	IdleReplicaCount      *int32          `json:"idleReplicaCount,omitempty"`
	MinReplicaCount       *int32          `json:"minReplicaCount,omitempty"`
	MaxReplicaCount       *int32          `json:"maxReplicaCount,omitempty"`
	Advanced              *AdvancedConfig `json:"advanced,omitempty"`
	Triggers              []ScaleTrigger  `json:"triggers"`
	Fallback              *Fallback       `json:"fallback,omitempty"`
}

// ScaleTarget names the workload a ScaledObject scales (a Deployment when
// Kind is empty).
type ScaleTarget struct {
	Name                   string `json:"name"`
	APIVersion             string `json:"apiVersion,omitempty"`
	Kind                   string `json:"kind,omitempty"`
	EnvSourceContainerName string `json:"envSourceContainerName,omitempty"`
}

// AdvancedConfig holds the HPA settings KEDA passes on.
type AdvancedConfig struct {
	HorizontalPodAutoscalerConfig *HorizontalPodAutoscalerConfig `json:"horizontalPodAutoscalerConfig,omitempty"`
	RestoreToOriginalReplicaCount bool                           `json:"restoreToOriginalReplicaCount,omitempty"`
}

// HorizontalPodAutoscalerConfig is the HPA that KEDA creates.
type HorizontalPodAutoscalerConfig struct {
	Behavior *autoscalingv2.HorizontalPodAutoscalerBehavior `json:"behavior,omitempty"`
	Name     string                                         `json:"name,omitempty"`
}

// Fallback is the replica count used when the scaler fails.
type Fallback struct {
	FailureThreshold int32  `json:"failureThreshold"`
	Replicas         int32  `json:"replicas"`
	Behavior         string `json:"behavior,omitempty"`
}

// ScaleTrigger is one scaler of a ScaledObject.
type ScaleTrigger struct {
	Type              string                         `json:"type"`
	Name              string                         `json:"name,omitempty"`
	UseCachedMetrics  bool                           `json:"useCachedMetrics,omitempty"`
	Metadata          map[string]string              `json:"metadata"`
	AuthenticationRef *AuthenticationRef             `json:"authenticationRef,omitempty"`
	MetricType        autoscalingv2.MetricTargetType `json:"metricType,omitempty"`
}

// AuthenticationRef names a TriggerAuthentication (or, with Kind,
// a ClusterTriggerAuthentication).
type AuthenticationRef struct {
	Name string `json:"name"`
	Kind string `json:"kind,omitempty"`
}

// TriggerAuthentication is KEDA's TriggerAuthentication, with the secret
// and environment sources.
type TriggerAuthentication struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              TriggerAuthenticationSpec `json:"spec"`
}

// TriggerAuthenticationSpec says where a scaler's auth parameters come from.
type TriggerAuthenticationSpec struct {
	SecretTargetRef []AuthSecretTargetRef `json:"secretTargetRef,omitempty"`
	Env             []AuthEnvironment     `json:"env,omitempty"`
}

// AuthSecretTargetRef sets the auth parameter Parameter from key Key of
// the Secret Name.
type AuthSecretTargetRef struct {
	Parameter string `json:"parameter"`
	Name      string `json:"name"`
	Key       string `json:"key"`
}

// AuthEnvironment sets the auth parameter Parameter from the variable Name
// of the scale target's container.
type AuthEnvironment struct {
	Parameter     string `json:"parameter"`
	Name          string `json:"name"`
	ContainerName string `json:"containerName,omitempty"`
}

// TemporalTriggerMetadata are the metadata keys of KEDA's temporal scaler
// in v2.17 (pkg/scalers/temporal.go; a key with a *FromEnv twin reads its
// value from the scale target container's environment; later releases
// add more, such as tlsServerName), and
// TemporalAuthParams the parameters it takes from a TriggerAuthentication.
var (
	TemporalTriggerMetadata = map[string]bool{
		"endpoint": true, "endpointFromEnv": true,
		"namespace": true, "namespaceFromEnv": true,
		"taskQueue": true, "taskQueueFromEnv": true,
		"targetQueueSize": true, "activationTargetQueueSize": true,
		"queueTypes": true, "buildId": true, "buildIdFromEnv": true,
		"selectAllActive": true, "selectUnversioned": true,
		"minConnectTimeout": true, "unsafeSsl": true,
	}
	TemporalAuthParams = map[string]bool{"apiKey": true, "cert": true, "key": true, "keyPassword": true, "ca": true}
)
