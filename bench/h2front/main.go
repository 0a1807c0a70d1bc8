// An HTTP/2 front for the Kubernetes stand-in, for bench/http2_bench.py only.
//
// The stand-in (Python's http.server) speaks HTTP/1.1 alone; a real API server is Go's net/http,
// which offers h2 and http/1.1 over TLS by ALPN unless HTTP/2 is turned off (k8s.io/apiserver,
// pkg/server/secure_serving.go: the serving tls.Config's NextProtos). This front is that server:
// it terminates TLS with both protocols and passes each request on to the stand-in over keep-alive
// HTTP/1.1, as the bench's own Kubernetes user (a client certificate), so every client measured
// through it meets the same server, whichever protocol it speaks. It prints the port it listens on, then serves until
// its standard input closes.
//
//	h2front SERVER_CERT SERVER_KEY UPSTREAM_URL UPSTREAM_NAME UPSTREAM_CA CLIENT_CERT CLIENT_KEY
package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
)

func main() {
	if len(os.Args) != 8 {
		log.Fatalf("usage: %s SERVER_CERT SERVER_KEY UPSTREAM_URL UPSTREAM_NAME UPSTREAM_CA CLIENT_CERT CLIENT_KEY", os.Args[0])
	}
	certFile, keyFile, upstream, upstreamName := os.Args[1], os.Args[2], os.Args[3], os.Args[4]
	caPEM, err := os.ReadFile(os.Args[5])
	if err != nil {
		log.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		log.Fatal("no CA certificate in ", os.Args[5])
	}
	client, err := tls.LoadX509KeyPair(os.Args[6], os.Args[7])
	if err != nil {
		log.Fatal(err)
	}
	target, err := url.Parse(upstream)
	if err != nil {
		log.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.Transport = &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: roots, ServerName: upstreamName, Certificates: []tls.Certificate{client}},
		MaxIdleConnsPerHost: 64, // the default (2) would close most of 16 clients' connections after each request
	}
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(listener.Addr().(*net.TCPAddr).Port)
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	}()
	// ServeTLS offers h2 and http/1.1 by ALPN, as the API server does.
	log.Fatal((&http.Server{Handler: proxy}).ServeTLS(listener, certFile, keyFile))
}
