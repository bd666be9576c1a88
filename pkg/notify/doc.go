// Package notify tells people and systems about each step of a node's reboot
// cycle, without ever holding the cycle up.
//
// The agent calls Notify at each step with an Event (cycle-started, drained,
// rebooting, back, failed, blocked-long, loop-detected). Notify only queues:
// every sink has a bounded queue (full: the event is dropped and counted) and a
// goroutine of its own that delivers with bounded retries, exponential,
// jittered back-off and a timeout per attempt, so a slow or dead receiver
// loses its own events and delays nobody else's.
//
// # Sinks
//
// --notify-url (repeatable) takes shoutrrr URLs as kured does: slack://,
// teams://, matrix://, discord://, generic:// (any webhook) and the rest of
// shoutrrr's services. As in kured, they get a message for three steps only,
// from kured's flags and with kured's defaults: --message-template-drain
// (drained, "Draining node %s"), --message-template-reboot (rebooting,
// "Rebooting node %s") and --message-template-uncordon (back, "Node %s
// rebooted & uncordoned successfully!"). kured formats these with
// fmt.Sprintf(template, nodeName) and knows no other placeholder (no Go
// template), so a template here may hold one %s (the node's name) and %% and
// nothing else; anything else is refused at start instead of showing up as
// fmt's %!d(string=…) in the chat room. An empty template means kured's
// default (kured's chart leaves the value empty to keep it), a URL in one pair
// of quotes is unquoted and an empty URL skipped, as kured does. No title is
// sent (kured sends none): a title= in the URL, shoutrrr's own way, applies.
//
// --notify-webhook is a URL every event of every kind is POSTed to, as JSON
// (Content-Type: application/json), with an Idempotency-Key header,
// <cycle>/<kind>, the same on every retry, for the receiver to drop the
// duplicates a lost answer makes. The default body is
//
//	{"kind":"failed","node":"…","cycle":"…","reason":"…","time":"RFC 3339","text":"…"}
//
// where text is the human sentence (kured's message for drained, rebooting
// and back). --notify-webhook-template KIND=TEMPLATE (repeatable) replaces
// the body of one kind by a Go text/template over .Kind .Node .Cycle .Reason
// .Time .Text, with json to quote a value: {"alert":{{json .Reason}}}. Each
// template is run at start on a sample event whose reason holds a quote, a
// backslash and a newline; one whose output is not valid JSON is refused,
// naming the flag and the kind.
//
// 2xx is delivered; 429 and 5xx (honouring Retry-After, up to the back-off
// cap), connection errors and timeouts are retried; any other answer is
// final, and so is a redirect, which is not followed (a POST body does not go
// where nobody configured it to). shoutrrr's errors do not tell a final
// failure from a passing one, so every --notify-url failure is retried.
//
// # Library
//
// The --notify-url values are shoutrrr URLs, so the candidates are shoutrrr
// and its forks; nikoksr/notify, the other maintained Go notification
// library, was measured too but speaks no URL scheme (each service is built
// in code), so kured's --notify-url values would not work with it. Each was
// fetched with go get through the module proxy. The proxy's version lists
// (and so @latest) are stale here: they end at fork v0.13.2 and notify
// v1.3.0, while later versions asked for by name are served (the table's
// "found" are those); containrrr serves nothing after v0.8.0.
//
//	                             containrrr/shoutrrr   nicholas-fedor/shoutrrr        nikoksr/notify
//	newest found (date)          v0.8.0 (2023-08-20)   v0.20.0 (2026-09-08, needs     v1.5.0 (2025-12-15)
//	                                                   Go 1.27); v0.18.0 (2026-08-26)
//	releases since May 2025      none                  24 found, v0.8.9 … v0.20.0     2 found, v1.4.0 and v1.5.0
//	speaks kured's URLs          yes                   yes                            no
//	tiny main, +modules, bytes   +5, 8,462,498         v0.13.2: +5, 8,777,890         +24, 8,089,762
//	(5,841,058 without)                                v0.18.0: +8, 9,539,746
//	nodepatch, +modules, bytes   +4, 63,369,378        v0.13.2: +3, 63,647,906        +19, 36,647,074
//	(35,127,458 without)                               v0.18.0: +5, 64,340,130
//
// (go1.26.8 linux/amd64, CGO_ENABLED=0 go build -trimpath -ldflags "-s -w",
// nodepatch at 9006a62 with one file calling the library; "+modules" counts
// modules linked in that were not; the tiny main POSTs with net/http and
// sends one message; nikoksr/notify with its slack, msteams, discord, matrix
// and http services.) The original has had no release since August 2023;
// its issue "Project still alive?" (containrrr/shoutrrr#450, open) has users
// pointing to the fork and a maintainer answering in May 2026 that work goes
// on there, still without a release. The fork keeps the API and the URLs,
// releases every few weeks, is packaged in Debian, and evcc, birdnet-go and
// the watchtower fork moved to it. Open-issue counts could not be read from
// here (the module proxy is the only network).
//
// Chosen: nicholas-fedor/shoutrrr v0.18.0, the newest that builds with this
// module's Go 1.26. Over v0.13.2 it weighs 0.7 MB and two modules more
// (eclipse/paho.golang for its mqtt service, gorilla/websocket) and brings
// what v0.13.2 lacks: every HTTP service takes an HTTP client of ours, whose
// timeout ends the call of an attempt given up on (v0.13.2's generic, teams,
// googlechat and others post with http.DefaultClient, which never gives up),
// and Teams' Power Automate workflow URLs, teams://?host=<workflow URL>. The
// Office 365 connector URLs kured's docs show
// (teams://group@tenant/altId/groupOwner?host=…) are retired by Microsoft,
// the fork's docs say, and it no longer takes them. In go.mod it adds itself, paho.golang,
// gorilla/websocket, mattn/go-colorable and mattn/go-isatty, and raises
// go-logr/logr from v1.4.3 to v1.4.4.
//
// The +28 MB on nodepatch is not shoutrrr's code: a plain text/template
// Execute alone makes a 62,853,282-byte nodepatch, and a single
// reflect.Value.MethodByName call alone as big a one (both 62,607,522 bytes
// at an earlier commit). A call to
// a method chosen by name at run time keeps the linker from dropping any
// exported method of any type it links, and client-go links many. shoutrrr
// renders with text/template, and so do the --notify-webhook-template
// bodies, so any shoutrrr (and the webhook templates alone) cost it; the
// whole package makes nodepatch 35,127,458 → 64,438,434 bytes (+83%).
//
// # Limits
//
// shoutrrr's services take no context. An attempt that times out is
// abandoned, not stopped: its call goes on in a goroutine until the service's
// client gives up: ours, with the attempt's timeout, for every HTTP service
// (v0.18.0 lets each take one), shoutrrr's own for smtp, mqtt and matrix's
// login. Calls to one URL never overlap (services change their own config
// while they send): the next attempt waits for the abandoned one, at most its
// own timeout. matrix logs in when it is set up, so it is set up at the first
// send (a login that fails is retried like a send), not at start: a chat
// server that is down does not keep the agent from starting, and checking the
// flags makes no network call.
//
// Secrets: notification URLs carry tokens, so errors and logs show a URL as
// its scheme (and host, for http(s) and generic), and the services' error
// texts are scrubbed of the URL's parts.
package notify
