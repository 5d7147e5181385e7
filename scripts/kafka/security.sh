# shellcheck shell=bash
# Sourced by scripts/kafka.sh: the secured broker mode (`start --security`, or
# KLAG_KAFKA_SECURITY=1). Adds to the PLAINTEXT listener (kept as the admin port: its clients are
# ANONYMOUS, a super user) these listeners, each on a free port of 127.0.0.1:
#
#   SASL_PLAINTEXT  PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER (Kafka's default unsecured-JWT
#                   validator: tokens with {"alg":"none"}, the principal is the `sub` claim)
#   SSL             TLS, no client certificate (clients are ANONYMOUS, a super user)
#   MTLS            TLS with ssl.client.auth=required (the principal is the certificate's CN)
#   SASL_SSL        the SASL mechanisms above over TLS
#
# plus StandardAuthorizer (super users ANONYMOUS and admin; allow.everyone.if.no.acl.found=false,
# so SASL users and certificate principals need ACLs). Users alice and admin exist for PLAIN (JAAS
# in server.properties) and both SCRAM mechanisms (created by `StorageTool format --add-scram`).
# Certificates (EC P-256, made with openssl into <state>/tls): a CA, the broker's (SAN IP
# 127.0.0.1 and DNS localhost), and a client certificate (CN=klag-client) whose key is also kept
# encrypted. Everything a client needs is written to <state>/listeners as key=value lines.
#
# Uses from kafka.sh: STATE, PROPS, SECURITY, OPT_PORT, pick_port, die, info.

readonly SEC_TLS_DIR="${STATE}/tls"
readonly SEC_LISTENERS="${STATE}/listeners"
readonly SEC_MARKER="${STATE}/security"
# Fixed test credentials: this broker only ever listens on 127.0.0.1 for tests.
readonly SEC_USER=alice SEC_PASSWORD=alice-secret
readonly SEC_ADMIN=admin SEC_ADMIN_PASSWORD=admin-secret
readonly SEC_CLIENT_KEY_PASSWORD=client-key-secret

# True when this state dir runs (or was formatted as) a secured broker. Once formatted with
# SCRAM users, a state dir stays secured until `start --fresh`.
security_enabled() {
  [[ "${SECURITY}" == 1 || -f "$SEC_MARKER" ]]
}

# `start --fresh`: forget the secured listeners (the certificates are kept: same CA).
security_fresh() {
  rm -f "$SEC_LISTENERS" "$SEC_MARKER"
}

# Arguments for `StorageTool format`: the SCRAM credentials of both users.
security_format_args() {
  local user password mechanism
  for user in "${SEC_USER}:${SEC_PASSWORD}" "${SEC_ADMIN}:${SEC_ADMIN_PASSWORD}"; do
    password="${user#*:}"
    user="${user%%:*}"
    for mechanism in SCRAM-SHA-256 SCRAM-SHA-512; do
      printf '%s\n' --add-scram "${mechanism}=[name=${user},password=${password}]"
    done
  done
}

# Makes the CA, broker and client certificates once per state dir.
security_certs() {
  [[ -f "${SEC_TLS_DIR}/.complete" ]] && return 0
  command -v openssl >/dev/null 2>&1 || die "openssl not found (Debian package openssl)"
  local d="$SEC_TLS_DIR" ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -noenc)
  rm -rf "$d"
  mkdir -p "$d"
  {
    openssl req -x509 "${ec[@]}" -keyout "${d}/ca.key" -out "${d}/ca.pem" -days 3650 \
      -subj "/CN=klag-test-ca" -addext "basicConstraints=critical,CA:TRUE" \
      -addext "keyUsage=critical,keyCertSign,cRLSign" &&
      openssl req "${ec[@]}" -keyout "${d}/broker.key" -out "${d}/broker.csr" -subj "/CN=localhost" &&
      openssl x509 -req -in "${d}/broker.csr" -CA "${d}/ca.pem" -CAkey "${d}/ca.key" \
        -CAcreateserial -out "${d}/broker.pem" -days 3650 -extfile <(printf '%s\n' \
          "subjectAltName=IP:127.0.0.1,DNS:localhost" "extendedKeyUsage=serverAuth") &&
      openssl req "${ec[@]}" -keyout "${d}/client.key" -out "${d}/client.csr" -subj "/CN=klag-client" &&
      openssl x509 -req -in "${d}/client.csr" -CA "${d}/ca.pem" -CAkey "${d}/ca.key" \
        -CAcreateserial -out "${d}/client.pem" -days 3650 \
        -extfile <(printf '%s\n' "extendedKeyUsage=clientAuth") &&
      openssl pkcs8 -topk8 -v2 aes-256-cbc -in "${d}/client.key" -out "${d}/client-encrypted.key" \
        -passout "pass:${SEC_CLIENT_KEY_PASSWORD}"
  } >"${d}/openssl.log" 2>&1 || {
    cat "${d}/openssl.log" >&2
    die "making the test certificates in ${d} failed"
  }
  # Kafka's PEM keystore: the PKCS#8 key and the certificate chain in one file.
  cat "${d}/broker.key" "${d}/broker.pem" "${d}/ca.pem" >"${d}/broker-keystore.pem"
  touch "${d}/.complete"
}

# The secured listeners' ports: kept from <state>/listeners when the broker restarts on its
# ports (--port given, as `restart` does), else free ones.
security_ports() {
  local port="$1" cport="$2" name p taken
  SEC_PORTS=()
  if [[ -n "$OPT_PORT" && -f "$SEC_LISTENERS" ]]; then
    for name in sasl_plaintext ssl mtls sasl_ssl; do
      p="$(sed -n "s/^${name}=127\.0\.0\.1://p" "$SEC_LISTENERS")"
      [[ "$p" =~ ^[0-9]+$ ]] || die "${SEC_LISTENERS} has no ${name} port"
      SEC_PORTS+=("$p")
    done
    return 0
  fi
  taken=" ${port} ${cport} "
  while ((${#SEC_PORTS[@]} < 4)); do
    p="$(pick_port "$port")"
    [[ "$taken" == *" ${p} "* ]] && continue
    taken+="${p} "
    SEC_PORTS+=("$p")
  done
}

# Appends the secured listeners to server.properties (later keys win in a Java properties file)
# and writes <state>/listeners.
security_configure() {
  local port="$1" cport="$2"
  security_certs
  security_ports "$port" "$cport"
  local sp="${SEC_PORTS[0]}" ssl="${SEC_PORTS[1]}" mtls="${SEC_PORTS[2]}" ss="${SEC_PORTS[3]}"
  local h=127.0.0.1 jaas_plain jaas_scram jaas_oauth l
  jaas_plain="org.apache.kafka.common.security.plain.PlainLoginModule required user_${SEC_ADMIN}=\"${SEC_ADMIN_PASSWORD}\" user_${SEC_USER}=\"${SEC_PASSWORD}\";"
  jaas_scram="org.apache.kafka.common.security.scram.ScramLoginModule required;"
  jaas_oauth="org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required unsecuredLoginStringClaim_sub=\"${SEC_ADMIN}\";"
  {
    echo
    echo "# ---- secured mode (scripts/kafka/security.sh) ----"
    echo "listeners=PLAINTEXT://${h}:${port},CONTROLLER://${h}:${cport},SASL_PLAINTEXT://${h}:${sp},SSL://${h}:${ssl},MTLS://${h}:${mtls},SASL_SSL://${h}:${ss}"
    echo "advertised.listeners=PLAINTEXT://${h}:${port},SASL_PLAINTEXT://${h}:${sp},SSL://${h}:${ssl},MTLS://${h}:${mtls},SASL_SSL://${h}:${ss}"
    echo "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,SSL:SSL,MTLS:SSL,SASL_SSL:SASL_SSL"
    echo "sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512,OAUTHBEARER"
    for l in sasl_plaintext sasl_ssl; do
      echo "listener.name.${l}.plain.sasl.jaas.config=${jaas_plain}"
      echo "listener.name.${l}.scram-sha-256.sasl.jaas.config=${jaas_scram}"
      echo "listener.name.${l}.scram-sha-512.sasl.jaas.config=${jaas_scram}"
      echo "listener.name.${l}.oauthbearer.sasl.jaas.config=${jaas_oauth}"
    done
    echo "ssl.keystore.type=PEM"
    echo "ssl.keystore.location=${SEC_TLS_DIR}/broker-keystore.pem"
    echo "ssl.truststore.type=PEM"
    echo "ssl.truststore.location=${SEC_TLS_DIR}/ca.pem"
    echo "listener.name.mtls.ssl.client.auth=required"
    echo "ssl.principal.mapping.rules=RULE:^CN=(.*)\$/\$1/,DEFAULT"
    echo "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer"
    echo "super.users=User:ANONYMOUS;User:${SEC_ADMIN}"
    echo "allow.everyone.if.no.acl.found=false"
  } >>"$PROPS"
  {
    echo "plaintext=${h}:${port}"
    echo "sasl_plaintext=${h}:${sp}"
    echo "ssl=${h}:${ssl}"
    echo "mtls=${h}:${mtls}"
    echo "sasl_ssl=${h}:${ss}"
    echo "sasl_mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512,OAUTHBEARER"
    echo "user=${SEC_USER}"
    echo "password=${SEC_PASSWORD}"
    echo "admin_user=${SEC_ADMIN}"
    echo "admin_password=${SEC_ADMIN_PASSWORD}"
    echo "super_users=User:ANONYMOUS,User:${SEC_ADMIN}"
    echo "ca=${SEC_TLS_DIR}/ca.pem"
    echo "client_cert=${SEC_TLS_DIR}/client.pem"
    echo "client_key=${SEC_TLS_DIR}/client.key"
    echo "client_key_encrypted=${SEC_TLS_DIR}/client-encrypted.key"
    echo "client_key_password=${SEC_CLIENT_KEY_PASSWORD}"
    echo "client_principal=User:klag-client"
  } >"${SEC_LISTENERS}.tmp"
  mv "${SEC_LISTENERS}.tmp" "$SEC_LISTENERS"
  touch "$SEC_MARKER"
}
