# syntax=docker/dockerfile:1
# The nodepatch agent: one static binary on distroless/static.
#
#   docker build --build-arg VERSION=v0.1.0 -t ghcr.io/nodepatch/nodepatch:v0.1.0 .
#
# test/chart/image_test.go builds the binary with the flags of the `go build` line
# below (it reads them from this file) and checks that it is static and stamped.

ARG GO_VERSION=1.26
FROM --platform=$BUILDPLATFORM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ARG TARGETOS=linux
ARG TARGETARCH=amd64
RUN CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} go build -trimpath -ldflags "-s -w -X github.com/nodepatch/nodepatch/pkg/version.Version=${VERSION}" -o /out/nodepatch ./cmd/nodepatch

# static-debian12 has no shell and no package manager. It runs as root (uid 0) on
# purpose: systemd's D-Bus policy lets only uid 0 call the Manager methods the agent
# needs (StartUnit reboot.target, StartTransientUnit for apt/dnf). The chart drops
# every capability, so uid 0 here is "root on the bus", not "root in the kernel".
FROM gcr.io/distroless/static-debian12:latest
COPY --from=build /out/nodepatch /nodepatch
USER 0:0
ENTRYPOINT ["/nodepatch"]
CMD ["agent"]
