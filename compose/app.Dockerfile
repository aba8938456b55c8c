# The demo service, from a binary built from the current checkout
# (`cargo build --release -p demo`; loadtest.sh does it before every run).
FROM loadtest/debian:bookworm
ARG DEMO_BIN=target/release/demo
COPY ${DEMO_BIN} /usr/local/bin/demo
COPY demo/migrations /app/migrations
ENV BIND_ADDR=0.0.0.0:8080
EXPOSE 8080
CMD ["demo"]
