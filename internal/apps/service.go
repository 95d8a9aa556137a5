package apps

import (
	"fmt"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/kubecdn/kubecdn/internal/config"
)

// Service finds the LoadBalancer Service an app service names, as written
// in the manifests (before any region's overrides). The Service is looked
// for in svc.Namespace when set, else in any namespace (an object without
// one counts as "default"); the returned Service always has its namespace
// set.
func (a *App) Service(svc config.AppService) (*corev1.Service, error) {
	where := a.servicePath(svc)
	var hits []object
	var services []string
	for _, o := range a.objects {
		u := o.u
		if u.GetKind() != "Service" || u.GroupVersionKind().Group != "" {
			continue
		}
		services = append(services, namespaceOf(u)+"/"+u.GetName())
		if u.GetName() == svc.Service && (svc.Namespace == "" || namespaceOf(u) == svc.Namespace) {
			hits = append(hits, o)
		}
	}
	switch len(hits) {
	case 0:
		name := strconv.Quote(svc.Service)
		if svc.Namespace != "" {
			name = svc.Namespace + "/" + svc.Service
		}
		have := "it has no Services"
		if len(services) > 0 {
			have = "it has " + strings.Join(services, ", ")
		}
		return nil, fmt.Errorf("%s: no Service %s in the manifests of app %q (%s)", where, name, a.Name, have)
	case 1:
	default:
		var ns []string
		for _, o := range hits {
			ns = append(ns, namespaceOf(o.u))
		}
		return nil, fmt.Errorf("%s: Service %q is in several namespaces (%s): set namespace", where, svc.Service, strings.Join(ns, ", "))
	}
	var s corev1.Service
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(hits[0].u.UnstructuredContent(), &s); err != nil {
		return nil, fmt.Errorf("%s: Service %q in %s: %w", where, svc.Service, hits[0].source, err)
	}
	if s.Namespace == "" {
		s.Namespace = "default"
	}
	if s.Spec.Type != corev1.ServiceTypeLoadBalancer {
		t := s.Spec.Type
		if t == "" {
			t = corev1.ServiceTypeClusterIP
		}
		return nil, fmt.Errorf("%s: Service %s/%s is of type %s, want LoadBalancer (it needs an address users can reach)", where, s.Namespace, s.Name, t)
	}
	return &s, nil
}

// servicePath names an app service in messages by its field path when it
// is one of the app's.
func (a *App) servicePath(svc config.AppService) string {
	for j, s := range a.spec.Services {
		if s == svc {
			return fmt.Sprintf("%s.services[%d]", a.path, j)
		}
	}
	return fmt.Sprintf("app %q: service %q", a.Name, svc.Service)
}

// ServicePort returns the port an app service is published and probed
// with: svc.Port, which must be one of the Service's ports, or else the
// Service's first port.
func ServicePort(s *corev1.Service, svc config.AppService) (int32, error) {
	if len(s.Spec.Ports) == 0 {
		return 0, fmt.Errorf("service %s/%s has no ports", s.Namespace, s.Name)
	}
	if svc.Port == 0 {
		return s.Spec.Ports[0].Port, nil
	}
	var have []string
	for _, p := range s.Spec.Ports {
		if int(p.Port) == svc.Port {
			return p.Port, nil
		}
		d := fmt.Sprintf("%d/%s", p.Port, protocolOf(p))
		if p.Name != "" {
			d += " " + p.Name
		}
		have = append(have, d)
	}
	return 0, fmt.Errorf("service %s/%s has no port %d (its ports: %s)", s.Namespace, s.Name, svc.Port, strings.Join(have, ", "))
}

func protocolOf(p corev1.ServicePort) corev1.Protocol {
	if p.Protocol == "" {
		return corev1.ProtocolTCP
	}
	return p.Protocol
}
