package autoscale

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// stateKey is the ConfigMap key that holds the state.
const stateKey = "state.json"

// KubeStateName is the ConfigMap (and Lease) of the deployed autoscaler, in
// the first always-on region's cluster, in the CDN's namespace.
const KubeStateName = "kubecdn-autoscaler"

// KubeStore keeps the state in a ConfigMap of an always-on region's
// cluster, so a replaced autoscaler resumes where the last one stopped.
type KubeStore struct {
	Client    kubernetes.Interface
	Namespace string
	Name      string
}

// Load reads the state; no ConfigMap yet is a fresh start.
func (k KubeStore) Load(ctx context.Context) (State, error) {
	st, _, err := LoadKubeState(ctx, k.Client.CoreV1().ConfigMaps(k.Namespace), k.Name)
	return st, err
}

// LoadKubeState reads the state an autoscaler keeps in the ConfigMap name
// of cms (KubeStore); found is false when there is none (no autoscaler
// has run).
func LoadKubeState(ctx context.Context, cms corev1client.ConfigMapInterface, name string) (st State, found bool, err error) {
	cm, err := cms.Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return st, false, nil
	}
	if err != nil {
		return st, false, fmt.Errorf("configmap %s: %w", name, err)
	}
	if err := json.Unmarshal([]byte(cm.Data[stateKey]), &st); err != nil {
		return st, false, fmt.Errorf("configmap %s/%s key %s: %w", cm.Namespace, name, stateKey, err)
	}
	return st, true, nil
}

// Save writes the state. Only the leader writes, so a conflict means the
// object changed under a previous leader: the write is retried on the
// fresh object.
func (k KubeStore) Save(ctx context.Context, st State) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	cms := k.Client.CoreV1().ConfigMaps(k.Namespace)
	for try := 0; ; try++ {
		cm, err := cms.Get(ctx, k.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			cm = &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: k.Name, Namespace: k.Namespace,
				Labels: map[string]string{"app.kubernetes.io/managed-by": "kubecdn", "app.kubernetes.io/component": "autoscaler"}},
				Data: map[string]string{stateKey: string(b)}}
			_, err = cms.Create(ctx, cm, metav1.CreateOptions{})
		} else if err == nil {
			if cm.Data == nil {
				cm.Data = map[string]string{}
			}
			cm.Data[stateKey] = string(b)
			_, err = cms.Update(ctx, cm, metav1.UpdateOptions{})
		}
		if err == nil {
			return nil
		}
		if try >= 2 || !(apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err)) {
			return fmt.Errorf("configmap %s/%s: %w", k.Namespace, k.Name, err)
		}
	}
}

// Lease timings: a leader that dies without releasing the Lease is
// replaced within LeaseDuration; one that stops cleanly releases it and
// the next takes over at its next retry.
const (
	LeaseDuration = 15 * time.Second
	RenewDeadline = 10 * time.Second
	RetryPeriod   = 2 * time.Second
)

// Lead runs lead while this process holds the Lease namespace/name, so of
// several autoscalers one decides. It returns when ctx ends; if the lease
// is lost, lead's context is cancelled and Lead campaigns again.
func Lead(ctx context.Context, client kubernetes.Interface, namespace, name, identity string, lead func(ctx context.Context)) error {
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: namespace, Name: name},
		Client:     client.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: identity},
	}
	for ctx.Err() == nil {
		le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
			Lock: lock, LeaseDuration: LeaseDuration, RenewDeadline: RenewDeadline, RetryPeriod: RetryPeriod,
			ReleaseOnCancel: true, Name: name,
			Callbacks: leaderelection.LeaderCallbacks{OnStartedLeading: lead, OnStoppedLeading: func() {}},
		})
		if err != nil {
			return fmt.Errorf("leader election: %w", err)
		}
		le.Run(ctx)
	}
	return nil
}
