// Command coredns is CoreDNS with only the plugins the local cluster's DNS needs
// (hack/node.sh runs it beside the real node's kubelet): CoreDNS's own main compiles
// every plugin, cloud providers' SDKs included, which would make this build several
// times longer. It follows CoreDNS's documented way of building with a chosen set of
// plugins: import them, and set dnsserver.Directives to their names in the order
// CoreDNS runs them (that of its plugin.cfg).
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	// The plugins of hack/node.sh's Corefile, plus log for debugging by hand.
	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/forward"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/loadbalance"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/loop"
	_ "github.com/coredns/coredns/plugin/ready"
)

// directives are the imported plugins in the order of CoreDNS's plugin.cfg (a plugin
// sees every request after those before it).
var directives = []string{
	"bind",
	"ready",
	"health",
	"errors",
	"log",
	"loadbalance",
	"cache",
	"kubernetes",
	"loop",
	"forward",
}

func init() {
	dnsserver.Directives = directives
}

func main() {
	coremain.Run()
}
