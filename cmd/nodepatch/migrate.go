package main

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes"

	"github.com/nodepatch/nodepatch/pkg/kured"
)

// newClientFunc builds the API client from --kubeconfig; tests pass a fake.
type newClientFunc func(kubeconfig string) (kubernetes.Interface, error)

func newMigrateCommand() *cobra.Command {
	return newMigrateCommandWith(func(kubeconfig string) (kubernetes.Interface, error) {
		return (&clusterFlags{kubeconfig: kubeconfig}).client()
	})
}

func newMigrateCommandWith(newClient newClientFunc) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Carry another reboot daemon's configuration over to nodepatch",
	}
	cmd.AddCommand(newMigrateFromKuredCommand(newClient))
	return cmd
}

func newMigrateFromKuredCommand(newClient newClientFunc) *cobra.Command {
	var kubeconfig, namespace, daemonSet string
	cmd := &cobra.Command{
		Use:   "from-kured",
		Short: "Print nodepatch chart values for the configuration of a kured DaemonSet",
		Long: "Read a kured DaemonSet (its flags and KURED_* variables) and print nodepatch chart\n" +
			"values on stdout, with notes, as comments at the top, on every kured setting nodepatch\n" +
			"takes differently or not at all. See docs/migrating-from-kured.md.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			for _, f := range []struct{ flag, value string }{{"namespace", namespace}, {"daemonset", daemonSet}} {
				if msgs := validation.IsDNS1123Subdomain(f.value); len(msgs) > 0 {
					return fmt.Errorf("--%s %q: want the name of kured's %s", f.flag, f.value, f.flag)
				}
			}
			client, err := newClient(kubeconfig)
			if err != nil {
				return err
			}
			return migrateFromKured(cmd.Context(), client, namespace, daemonSet, cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig file (default $KUBECONFIG, else ~/.kube/config)")
	cmd.Flags().StringVarP(&namespace, "namespace", "n", kured.DefaultNamespace, "namespace of kured's DaemonSet")
	cmd.Flags().StringVar(&daemonSet, "daemonset", kured.DefaultDaemonSet, "name of kured's DaemonSet")
	return cmd
}

// migrateFromKured reads the DaemonSet, maps it and writes the values file.
func migrateFromKured(ctx context.Context, client kubernetes.Interface, namespace, name string, out io.Writer) error {
	ds, err := client.AppsV1().DaemonSets(namespace).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return fmt.Errorf("daemonset %s/%s not found: point --namespace and --daemonset at kured's DaemonSet", namespace, name)
	}
	if err != nil {
		return fmt.Errorf("reading daemonset %s/%s: %w", namespace, name, err)
	}
	in, err := kured.FromDaemonSet(ds)
	if err != nil {
		return err
	}
	result, err := kured.Migrate(in)
	if err != nil {
		return fmt.Errorf("daemonset %s/%s: %w", namespace, name, err)
	}
	values, err := result.YAML()
	if err != nil {
		return err
	}
	_, err = out.Write(values)
	return err
}
