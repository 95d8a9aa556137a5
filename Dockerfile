# syntax=docker/dockerfile:1
# The kubecdn image: one static binary on distroless, running as non-root.
#   docker build -t ghcr.io/kubecdn/kubecdn:v0.1.0 --build-arg VERSION=v0.1.0 .
# Multi-arch: docker buildx build --platform linux/amd64,linux/arm64 ...
# (the build stage runs natively and cross-compiles; no emulation needed).

FROM --platform=$BUILDPLATFORM golang:1.26 AS build
WORKDIR /src
# Modules first, so code changes do not invalidate the download layer.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY cmd ./cmd
COPY internal ./internal
ARG VERSION=dev
ARG TARGETOS=linux
ARG TARGETARCH
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath \
      -ldflags "-s -w -X github.com/kubecdn/kubecdn/internal/cli.Version=${VERSION}" \
      -o /out/kubecdn ./cmd/kubecdn

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/kubecdn /usr/local/bin/kubecdn
# 65532 is distroless's nonroot; the rendered manifests run as it too.
USER 65532:65532
# edge: 8080 public, 9090 admin; dns: 5353 udp/tcp, 9053 admin.
EXPOSE 8080 9090 5353/udp 5353/tcp 9053
ENTRYPOINT ["/usr/local/bin/kubecdn"]
CMD ["--help"]
