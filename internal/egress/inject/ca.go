package inject

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// CA is a run's certificate authority: it signs the certificates the proxy
// shows an agent for the hosts that carry an injected credential. Its key
// stays in the run's private directory; containers trust its certificate
// through the bundle (Bundle).
type CA struct {
	cert    *x509.Certificate
	certPEM []byte
	key     *ecdsa.PrivateKey

	leafKey *ecdsa.PrivateKey // one key for every leaf: they all live in this process
	mu      sync.Mutex
	leaves  map[string]*tls.Certificate
}

// CA files in a run's secret directory.
const (
	caKeyFile  = "ca-key.pem"
	caCertFile = "ca.pem"
)

const (
	caValidity   = 10 * 365 * 24 * time.Hour // as long as a run lives; the key never leaves the host
	leafValidity = 7 * 24 * time.Hour
)

// LoadCA reads the run's CA from dir, making it on first use (key 0600).
func LoadCA(dir string) (*CA, error) {
	keyPEM, kerr := os.ReadFile(filepath.Join(dir, caKeyFile))
	certPEM, cerr := os.ReadFile(filepath.Join(dir, caCertFile))
	if errors.Is(kerr, fs.ErrNotExist) && errors.Is(cerr, fs.ErrNotExist) {
		return newCA(dir)
	}
	if kerr != nil || cerr != nil {
		return nil, fmt.Errorf("run CA in %s: %v", dir, errors.Join(kerr, cerr))
	}
	kb, _ := pem.Decode(keyPEM)
	cb, _ := pem.Decode(certPEM)
	if kb == nil || cb == nil {
		return nil, fmt.Errorf("run CA in %s is not PEM: destroy and apply the run again", dir)
	}
	key, err := x509.ParseECPrivateKey(kb.Bytes)
	if err != nil {
		return nil, fmt.Errorf("run CA key in %s: %w", dir, err)
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, fmt.Errorf("run CA certificate in %s: %w", dir, err)
	}
	return withLeafKey(&CA{cert: cert, certPEM: certPEM, key: key})
}

func newCA(dir string) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "runner run CA (credential injection)", Organization: []string{"runner"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(caValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, _ := x509.ParseCertificate(der)
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if err := writeFile(filepath.Join(dir, caKeyFile), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		return nil, err
	}
	if err := writeFile(filepath.Join(dir, caCertFile), certPEM, 0o600); err != nil {
		return nil, err
	}
	return withLeafKey(&CA{cert: cert, certPEM: certPEM, key: key})
}

func withLeafKey(ca *CA) (*CA, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	ca.leafKey, ca.leaves = k, map[string]*tls.Certificate{}
	return ca, nil
}

// writeFile writes atomically: a reader never sees half a key.
func writeFile(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// CertPEM is the CA certificate, for the containers' trust bundle.
func (ca *CA) CertPEM() []byte { return ca.certPEM }

// Leaf is the certificate shown to agents for host, made on first use and
// again when it nears its end.
func (ca *CA) Leaf(host string) (*tls.Certificate, error) {
	ca.mu.Lock()
	defer ca.mu.Unlock()
	if c := ca.leaves[host]; c != nil && time.Until(c.Leaf.NotAfter) > time.Hour {
		return c, nil
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: host},
		DNSNames:     []string{host},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(leafValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &ca.leafKey.PublicKey, ca.key)
	if err != nil {
		return nil, err
	}
	leaf, _ := x509.ParseCertificate(der)
	c := &tls.Certificate{Certificate: [][]byte{der, ca.cert.Raw}, PrivateKey: ca.leafKey, Leaf: leaf}
	ca.leaves[host] = c
	return c, nil
}

// systemBundles are where distributions keep the system roots as one PEM
// file (Go's crypto/x509 list).
var systemBundles = []string{
	"/etc/ssl/certs/ca-certificates.crt",
	"/etc/pki/tls/certs/ca-bundle.crt",
	"/etc/ssl/ca-bundle.pem",
	"/etc/pki/tls/cacert.pem",
	"/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
	"/etc/ssl/cert.pem",
}

// Bundle is the trust bundle containers get: the host's system roots, so
// every other host still verifies, plus the run CA.
func (ca *CA) Bundle() ([]byte, error) {
	for _, p := range systemBundles {
		if b, err := os.ReadFile(p); err == nil && len(b) > 0 {
			out := append([]byte{}, b...)
			if out[len(out)-1] != '\n' {
				out = append(out, '\n')
			}
			return append(out, ca.certPEM...), nil
		}
	}
	return nil, fmt.Errorf("no system CA bundle on this host (looked for %s): install ca-certificates", systemBundles[0])
}
