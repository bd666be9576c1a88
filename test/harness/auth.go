package harness

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Token is one line of the API server's static token file: a bearer token
// and the identity it authenticates as.
type Token struct {
	Token  string
	User   string
	UID    string
	Groups []string
}

func (t Token) validate() error {
	fields := append([]string{t.Token, t.User, t.UID}, t.Groups...)
	for _, f := range fields {
		if strings.ContainsAny(f, ",\"\n\r") {
			return fmt.Errorf("token for user %q: value %q has a comma, quote or newline", t.User, f)
		}
	}
	if t.Token == "" || t.User == "" {
		return fmt.Errorf("token for user %q: token and user must not be empty", t.User)
	}
	return nil
}

// csvLine renders the token as `token,user,uid,"group1,group2"`.
func (t Token) csvLine() string {
	uid := t.UID
	if uid == "" {
		uid = t.User
	}
	return fmt.Sprintf("%s,%s,%s,\"%s\"\n", t.Token, t.User, uid, strings.Join(t.Groups, ","))
}

func writeTokenFile(path string, tokens []Token) error {
	var b strings.Builder
	seen := map[string]bool{}
	for _, t := range tokens {
		if err := t.validate(); err != nil {
			return err
		}
		if seen[t.Token] {
			return fmt.Errorf("token for user %q: token used twice", t.User)
		}
		seen[t.Token] = true
		b.WriteString(t.csvLine())
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		return fmt.Errorf("write token file: %w", err)
	}
	return nil
}

// tokenRESTConfig is a client config for url that trusts caPEM and sends token.
func tokenRESTConfig(url string, caPEM []byte, token string) *rest.Config {
	return &rest.Config{
		Host:            url,
		BearerToken:     token,
		TLSClientConfig: rest.TLSClientConfig{CAData: caPEM},
		QPS:             100,
		Burst:           200,
	}
}

// writeKubeconfig writes a self-contained kubeconfig (CA embedded) for a
// bearer token.
func writeKubeconfig(path, url string, caPEM []byte, token string) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["test"] = &clientcmdapi.Cluster{Server: url, CertificateAuthorityData: caPEM}
	cfg.AuthInfos["test"] = &clientcmdapi.AuthInfo{Token: token}
	cfg.Contexts["test"] = &clientcmdapi.Context{Cluster: "test", AuthInfo: "test"}
	cfg.CurrentContext = "test"
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		return fmt.Errorf("write kubeconfig %s: %w", path, err)
	}
	return nil
}

// kubeconfigPathFor names a kubeconfig file after a hash of its token, so the
// same token always maps to the same file and the token is not in the name.
func kubeconfigPathFor(dir, token string) string {
	sum := sha256.Sum256([]byte(token))
	return filepath.Join(dir, "kubeconfig-"+hex.EncodeToString(sum[:6]))
}
