// Package libvirt manages real KVM/QEMU hosts through libvirtd, with the pure-Go client
// github.com/digitalocean/go-libvirt.
//
// A Conn is one connection to a host's libvirtd over a unix socket, TCP, TLS or an SSH tunnel
// to the host's libvirt socket (ParseURI reads the usual qemu[+transport]://... URIs). It
// defines, starts, stops and undefines domains generated from a DomainSpec, streams lifecycle
// events and live-migrates domains peer-to-peer with progress, a bandwidth cap and a deadline.
// A Host supervises one Conn: it reconnects with backoff and reports the host up or down.
package libvirt
