# syntax=docker/dockerfile:1

# callcast images. One build stage compiles every command as a static binary;
# each final stage is a distroless image holding one of them, run as the
# unprivileged "nonroot" user (uid 65532):
#
#   docker build --target edge   -t callcast/edge .
#   docker build --target worker -t callcast/worker .
#   docker build --target callsim -t callcast/callsim .
#
# The images have no shell, so their healthchecks run the binary's own
# "healthcheck" subcommand, which GETs /healthz on the port of EDGE_ADDR
# (edge) or WORKER_HTTP_ADDR (worker).

# The build runs on the builder's own platform and cross-compiles, so
# multi-platform builds (docker buildx --platform linux/amd64,linux/arm64)
# need no emulation.
FROM --platform=$BUILDPLATFORM golang:1.26-bookworm AS build
WORKDIR /src

# Modules first: this layer is rebuilt only when go.mod or go.sum change.
COPY go.mod go.sum ./
RUN go mod download && go mod verify

COPY . .
ARG TARGETOS TARGETARCH
RUN --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -ldflags="-s -w" -o /out/ ./cmd/edge ./cmd/worker ./cmd/callsim

# callsim: a command-line stand-in for Twilio, for trying an edge without a
# phone call.
FROM gcr.io/distroless/static-debian12:nonroot AS callsim
COPY --from=build /out/callsim /callsim
USER nonroot:nonroot
ENTRYPOINT ["/callsim"]

# worker: plays audio into calls; scale it by running more of them. The
# bundled audio is a default: mount your own read-only over /audio.
FROM gcr.io/distroless/static-debian12:nonroot AS worker
COPY --from=build /out/worker /worker
COPY audio/ /audio/
ENV AUDIO_DIR=/audio \
    WORKER_HTTP_ADDR=:9090
# /healthz, /readyz, /metrics
EXPOSE 9090
USER nonroot:nonroot
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["/worker", "healthcheck"]
ENTRYPOINT ["/worker"]

# edge: Twilio's webhook and Media Streams WebSocket, plus /healthz, /readyz
# and /metrics. Without NATS_URL it runs everything in one process. It is the
# last stage, so a plain "docker build ." builds it.
FROM gcr.io/distroless/static-debian12:nonroot AS edge
COPY --from=build /out/edge /edge
COPY audio/ /audio/
ENV EDGE_ADDR=:8080 \
    AUDIO_DIR=/audio
EXPOSE 8080
USER nonroot:nonroot
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["/edge", "healthcheck"]
ENTRYPOINT ["/edge"]
