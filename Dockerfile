# soundalert services (aggregator, notifier, web display, agent): one image, one user.
#   docker build -t soundalert .        (docker-compose.yml builds it as soundalert:local)
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN groupadd --system --gid 10001 soundalert \
    && useradd --system --uid 10001 --gid soundalert --home-dir /var/lib/soundalert \
       --shell /usr/sbin/nologin soundalert \
    && install -d -o soundalert -g soundalert -m 0750 /var/lib/soundalert

WORKDIR /opt/soundalert/src
COPY pyproject.toml README.md ./
COPY schemas ./schemas
COPY soundalert ./soundalert
COPY services ./services
COPY edge ./edge
# The web display's pages and static files and the agent's model ship as files next to the
# code: install in place so that they are found (a wheel would need them as package data).
# "inference" adds the TFLite runtime the agent (the demo node) classifies with; the hosted
# stack (docker-compose.hosted.yml) builds with EXTRAS=inference,hosted (NATS and PostgreSQL).
ARG EXTRAS=inference
RUN pip install --editable ".[${EXTRAS}]" \
    && python -c "from pathlib import Path; from edge.agent.demo import ensure_demo_recording as e; print(e(Path('/opt/soundalert/demo')))" \
    && soundalert version

USER soundalert:soundalert
WORKDIR /var/lib/soundalert
VOLUME ["/var/lib/soundalert"]
ENTRYPOINT []
CMD ["soundalert", "--help"]
