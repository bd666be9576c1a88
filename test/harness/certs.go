package harness

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
	"time"
)

// pkiFiles are the key material the control plane needs, written by writePKI.
type pkiFiles struct {
	CACert     string // CA that signed the serving certificate; clients trust it
	ServerCert string
	ServerKey  string
	SAKey      string // signs and verifies service-account tokens
	caPEM      []byte
}

// writePKI makes a CA, a serving certificate for 127.0.0.1 signed by it, and
// a service-account signing key, all ECDSA P-256, under dir.
func writePKI(dir string) (*pkiFiles, error) {
	files := &pkiFiles{
		CACert:     filepath.Join(dir, "ca.crt"),
		ServerCert: filepath.Join(dir, "apiserver.crt"),
		ServerKey:  filepath.Join(dir, "apiserver.key"),
		SAKey:      filepath.Join(dir, "sa.key"),
	}
	caKey, caCert, err := newCA()
	if err != nil {
		return nil, err
	}
	files.caPEM = pemBlock("CERTIFICATE", caCert.Raw)
	if err := os.WriteFile(files.CACert, files.caPEM, 0o644); err != nil {
		return nil, fmt.Errorf("write CA: %w", err)
	}
	if err := writeServingCert(files, caKey, caCert); err != nil {
		return nil, err
	}
	if err := writeNewKey(files.SAKey); err != nil {
		return nil, fmt.Errorf("service-account key: %w", err)
	}
	return files, nil
}

func newCA() (*ecdsa.PrivateKey, *x509.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("CA key: %w", err)
	}
	template := certTemplate("nodepatch-test-ca")
	template.IsCA = true
	template.BasicConstraintsValid = true
	template.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, template, template, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("parse CA certificate: %w", err)
	}
	return key, cert, nil
}

func writeServingCert(files *pkiFiles, caKey *ecdsa.PrivateKey, caCert *x509.Certificate) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("serving key: %w", err)
	}
	template := certTemplate("kube-apiserver")
	template.KeyUsage = x509.KeyUsageDigitalSignature
	template.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	template.DNSNames = []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"}
	// 10.0.0.1 is the first address of --service-cluster-ip-range.
	template.IPAddresses = []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("10.0.0.1")}
	der, err := x509.CreateCertificate(rand.Reader, template, caCert, &key.PublicKey, caKey)
	if err != nil {
		return fmt.Errorf("serving certificate: %w", err)
	}
	if err := os.WriteFile(files.ServerCert, pemBlock("CERTIFICATE", der), 0o644); err != nil {
		return fmt.Errorf("write serving certificate: %w", err)
	}
	return writeKey(files.ServerKey, key)
}

func certTemplate(commonName string) *x509.Certificate {
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	now := time.Now()
	return &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: commonName},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(7 * 24 * time.Hour),
	}
}

func writeNewKey(path string) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	return writeKey(path, key)
}

func writeKey(path string, key *ecdsa.PrivateKey) error {
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return fmt.Errorf("marshal key: %w", err)
	}
	if err := os.WriteFile(path, pemBlock("EC PRIVATE KEY", der), 0o600); err != nil {
		return fmt.Errorf("write key: %w", err)
	}
	return nil
}

func pemBlock(kind string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der})
}

// RandomToken returns 32 random hex characters, usable as a bearer token.
func RandomToken() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random token: %w", err)
	}
	return hex.EncodeToString(b), nil
}
