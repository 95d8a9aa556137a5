// Package controlplane holds what every kubecdn-started Kubernetes control
// plane shares, whether a test's throwaway API server (internal/kubetest) or
// a `provider: local` region (internal/infra/local): the PKI an API server
// needs (a CA, a serving certificate, a service-account key, static bearer
// tokens) and the flags etcd and kube-apiserver run with.
package controlplane

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// User is one identity of the static token file.
type User struct {
	Name   string
	Groups []string
}

// PKI is what one API server needs besides its flags. Every file lives in
// the directory given to NewPKI; the JSON form is what a caller keeps to use
// the files again after a restart.
type PKI struct {
	CAPEM     []byte `json:"caPEM"`
	CAFile    string `json:"caFile"`
	CAKeyFile string `json:"caKeyFile"`
	CertFile  string `json:"certFile"`
	KeyFile   string `json:"keyFile"`
	// SAKeyFile is the service-account signing key; its public half
	// verifies.
	SAKeyFile string `json:"saKeyFile"`
	// TokenFile is the static token file (--token-auth-file).
	TokenFile string `json:"tokenFile"`
	// Tokens maps each user's name to its bearer token.
	Tokens map[string]string `json:"tokens"`
}

// NewPKI writes a fresh PKI into dir: an ECDSA CA, a serving certificate for
// 127.0.0.1, localhost, the in-cluster names and extraIPs, valid from an
// hour before now for valid, a service-account key, and one random token
// per user.
func NewPKI(dir string, now time.Time, valid time.Duration, users []User, extraIPs ...net.IP) (*PKI, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	caFile, caKeyFile := filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.key")
	if err := NewCA(caFile, caKeyFile, now, valid); err != nil {
		return nil, err
	}
	return IssuePKI(dir, caFile, caKeyFile, now, valid, users, extraIPs...)
}

// NewCA writes a fresh ECDSA CA, valid from an hour before now for valid:
// its certificate to certFile and its key to keyFile.
func NewCA(certFile, keyFile string, now time.Time, valid time.Duration) error {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	ca := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "kubecdn-ca"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(valid),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		return fmt.Errorf("ca certificate: %w", err)
	}
	return writeKeyPair(certFile, keyFile, caDER, caKey)
}

// writeKeyPair writes key to keyFile and the certificate der to certFile,
// the key first: a certificate without its key is of no use.
func writeKeyPair(certFile, keyFile string, der []byte, key *ecdsa.PrivateKey) error {
	keyPEM, err := ecKeyPEM(key)
	if err != nil {
		return err
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		return err
	}
	return os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
}

// IssuePKI writes into dir, from the CA in caFile and caKeyFile (NewCA), a
// serving certificate (see NewPKI), a service-account key and one random
// token per user. The PKI it returns names the CA's files where they are.
func IssuePKI(dir, caFile, caKeyFile string, now time.Time, valid time.Duration, users []User, extraIPs ...net.IP) (*PKI, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	p := &PKI{
		CAPEM:     caPEM,
		CAFile:    caFile,
		CAKeyFile: caKeyFile,
		CertFile:  filepath.Join(dir, "apiserver.crt"),
		KeyFile:   filepath.Join(dir, "apiserver.key"),
		SAKeyFile: filepath.Join(dir, "sa.key"),
		TokenFile: filepath.Join(dir, "tokens.csv"),
		Tokens:    map[string]string{},
	}
	saKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	var tokens strings.Builder
	for _, u := range users {
		if u.Name == "" || strings.ContainsAny(u.Name, ",\"\n") {
			return nil, fmt.Errorf("user name %q is empty or holds a comma, quote or newline", u.Name)
		}
		secret := make([]byte, 16)
		if _, err := rand.Read(secret); err != nil {
			return nil, err
		}
		t := hex.EncodeToString(secret)
		p.Tokens[u.Name] = t
		// token,user,uid,"group1,group2"
		fmt.Fprintf(&tokens, "%s,%s,%s,%q\n", t, u.Name, u.Name, strings.Join(u.Groups, ","))
	}
	saPEM, err := ecKeyPEM(saKey)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(p.SAKeyFile, saPEM, 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(p.TokenFile, []byte(tokens.String()), 0o600); err != nil {
		return nil, err
	}
	if err := p.IssueServing(now, valid, extraIPs...); err != nil {
		return nil, err
	}
	return p, nil
}

// IssueServing writes a new serving certificate and key for p (see NewPKI
// for the names it holds), signed by p's CA: for an API server whose
// address changed.
func (p *PKI) IssueServing(now time.Time, valid time.Duration, extraIPs ...net.IP) error {
	ca, caKey, err := p.loadCA()
	if err != nil {
		return err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return err
	}
	leaf := &x509.Certificate{
		SerialNumber: serial.Add(serial, big.NewInt(2)),
		Subject:      pkix.Name{CommonName: "kube-apiserver"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(valid),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  append([]net.IP{net.IPv4(127, 0, 0, 1)}, extraIPs...),
		DNSNames:     []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, ca, &key.PublicKey, caKey)
	if err != nil {
		return fmt.Errorf("serving certificate: %w", err)
	}
	return writeKeyPair(p.CertFile, p.KeyFile, leafDER, key)
}

// VerifyServing checks that p's serving certificate is signed by p's CA
// and names host (an IP address or a DNS name).
func (p *PKI) VerifyServing(host string, now time.Time) error {
	b, err := os.ReadFile(p.CertFile)
	if err != nil {
		return err
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return fmt.Errorf("%s: no PEM certificate", p.CertFile)
	}
	leaf, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return fmt.Errorf("%s: %w", p.CertFile, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(p.CAPEM) {
		return fmt.Errorf("%s: no CA certificate", p.CAFile)
	}
	_, err = leaf.Verify(x509.VerifyOptions{DNSName: host, Roots: pool, CurrentTime: now})
	return err
}

func (p *PKI) loadCA() (*x509.Certificate, *ecdsa.PrivateKey, error) {
	blk, _ := pem.Decode(p.CAPEM)
	if blk == nil {
		return nil, nil, fmt.Errorf("%s: no PEM certificate", p.CAFile)
	}
	ca, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", p.CAFile, err)
	}
	b, err := os.ReadFile(p.CAKeyFile)
	if err != nil {
		return nil, nil, err
	}
	kblk, _ := pem.Decode(b)
	if kblk == nil {
		return nil, nil, fmt.Errorf("%s: no PEM key", p.CAKeyFile)
	}
	key, err := x509.ParseECPrivateKey(kblk.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", p.CAKeyFile, err)
	}
	return ca, key, nil
}

func ecKeyPEM(k *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), nil
}
