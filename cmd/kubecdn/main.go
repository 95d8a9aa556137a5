// Command kubecdn is a self-hosted content delivery network on Kubernetes.
// Its subcommands live in internal/cli.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/kubecdn/kubecdn/internal/cli"
)

func main() {
	cli.QuietKlog()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
