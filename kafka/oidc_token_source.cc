#include "kafka/oidc_token_source.h"

#include <curl/curl.h>

#include <cmath>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "nlohmann/json.hpp"

namespace klag::kafka {
namespace {

// An answer larger than this is not a token response.
constexpr size_t kMaxResponseBytes = 1 << 20;

struct CurlDeleter {
  void operator()(CURL* curl) const { curl_easy_cleanup(curl); }
};
struct SlistDeleter {
  void operator()(curl_slist* list) const { curl_slist_free_all(list); }
};

std::string BasicCredentials(const OidcClientConfig& config) {
  return absl::Base64Escape(absl::StrCat(internal::FormUrlEncode(config.client_id), ":",
                                         internal::FormUrlEncode(config.client_secret)));
}

// Every message passes through here: the secret (as given, and in the forms it is sent in)
// never leaves this file, whatever a server or libcurl echoes.
std::string Scrub(const OidcClientConfig& config, std::string message) {
  if (config.client_secret.empty()) return message;
  return absl::StrReplaceAll(message,
                             {{BasicCredentials(config), "<redacted>"},
                              {internal::FormUrlEncode(config.client_secret), "<redacted>"},
                              {config.client_secret, "<redacted>"}});
}

absl::Status Error(const OidcClientConfig& config, absl::StatusCode code,
                   absl::string_view message) {
  return absl::Status(code, Scrub(config, absl::StrCat("OAuth token endpoint ",
                                                       config.token_endpoint, ": ", message)));
}

size_t AppendBody(char* data, size_t size, size_t count, void* user) {
  auto* body = static_cast<std::string*>(user);
  const size_t bytes = size * count;
  if (body->size() + bytes > kMaxResponseBytes) return 0;  // curl fails with CURLE_WRITE_ERROR
  body->append(data, bytes);
  return bytes;
}

// The JSON object in a JWT's payload, or a discarded value when `token` is not a JWT.
nlohmann::json JwtClaims(absl::string_view token) {
  std::vector<absl::string_view> parts = absl::StrSplit(token, '.');
  if (parts.size() != 3) return nlohmann::json(nlohmann::json::value_t::discarded);
  std::string payload;
  if (!absl::WebSafeBase64Unescape(parts[1], &payload)) {
    return nlohmann::json(nlohmann::json::value_t::discarded);
  }
  nlohmann::json claims = nlohmann::json::parse(payload, nullptr, /*allow_exceptions=*/false);
  if (!claims.is_object()) return nlohmann::json(nlohmann::json::value_t::discarded);
  return claims;
}

// A positive number of seconds from a JSON number or a numeric string (some identity providers
// send expires_in as a string).
bool PositiveSeconds(const nlohmann::json& value, double* seconds) {
  if (value.is_number()) {
    *seconds = value.get<double>();
  } else if (!value.is_string() || !absl::SimpleAtod(value.get<std::string>(), seconds)) {
    return false;
  }
  return std::isfinite(*seconds) && *seconds > 0;
}

// "error: error_description" from an OAuth error answer (RFC 6749 section 5.2), or "".
std::string OAuthError(const nlohmann::json& answer, std::string* error_code) {
  if (!answer.is_object()) return "";
  std::string text;
  if (auto it = answer.find("error"); it != answer.end() && it->is_string()) {
    *error_code = it->get<std::string>();
    text = *error_code;
  }
  if (auto it = answer.find("error_description"); it != answer.end() && it->is_string()) {
    absl::StrAppend(&text, text.empty() ? "" : ": ", it->get<std::string>());
  }
  return text;
}

absl::StatusCode CodeForCurl(CURLcode res) {
  switch (res) {
    case CURLE_OPERATION_TIMEDOUT:
      return absl::StatusCode::kDeadlineExceeded;
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
      return absl::StatusCode::kInvalidArgument;
    default:
      // Connection refused, DNS, TLS handshake or verification, connection reset, ...
      return absl::StatusCode::kUnavailable;
  }
}

}  // namespace

namespace internal {

std::string FormUrlEncode(absl::string_view value) {
  std::string out;
  for (char c : value) {
    const auto u = static_cast<unsigned char>(c);
    if (absl::ascii_isalnum(u) || c == '-' || c == '.' || c == '_' || c == '~') {
      out.push_back(c);
    } else if (c == ' ') {
      out.push_back('+');
    } else {
      absl::StrAppend(&out, "%",
                      absl::AsciiStrToUpper(absl::StrCat(absl::Hex(u, absl::kZeroPad2))));
    }
  }
  return out;
}

absl::StatusOr<OidcToken> ParseTokenResponse(const OidcClientConfig& config, long http_status,
                                             absl::string_view body, absl::Time now) {
  const nlohmann::json answer = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (http_status < 200 || http_status > 299) {
    std::string error_code;
    const std::string detail = OAuthError(answer, &error_code);
    const std::string what = absl::StrCat("HTTP ", http_status, detail.empty() ? "" : ": ", detail);
    if (http_status == 401 || (http_status == 400 && (error_code == "invalid_client" ||
                                                      error_code == "unauthorized_client" ||
                                                      error_code == "invalid_grant"))) {
      return Error(config, absl::StatusCode::kUnauthenticated,
                   absl::StrCat("refused the client credentials of client \"", config.client_id,
                                "\" (", what, ")"));
    }
    if (http_status == 403) {
      return Error(
          config, absl::StatusCode::kPermissionDenied,
          absl::StrCat("refused a token to client \"", config.client_id, "\" (", what, ")"));
    }
    if (http_status == 400) {
      return Error(config, absl::StatusCode::kInvalidArgument,
                   absl::StrCat("refused the token request (", what, ")"));
    }
    if (http_status == 408 || http_status == 429 || (http_status >= 500 && http_status <= 599)) {
      return Error(config, absl::StatusCode::kUnavailable,
                   absl::StrCat("unavailable (", what, ")"));
    }
    return Error(config, absl::StatusCode::kUnknown,
                 absl::StrCat("unexpected answer (", what, ")"));
  }
  if (answer.is_discarded() || !answer.is_object()) {
    return Error(config, absl::StatusCode::kUnknown,
                 absl::StrCat("HTTP ", http_status, " answer is not a JSON object (", body.size(),
                              " bytes)"));
  }
  const auto access_token = answer.find("access_token");
  if (access_token == answer.end() || !access_token->is_string() ||
      access_token->get<std::string>().empty()) {
    return Error(config, absl::StatusCode::kUnknown,
                 absl::StrCat("HTTP ", http_status, " answer has no access_token"));
  }
  if (auto type = answer.find("token_type"); type != answer.end()) {
    if (!type->is_string() || !absl::EqualsIgnoreCase(type->get<std::string>(), "bearer")) {
      return Error(config, absl::StatusCode::kUnknown,
                   absl::StrCat("token_type is ", type->dump(), ", not Bearer"));
    }
  }
  OidcToken token;
  token.value = access_token->get<std::string>();
  const nlohmann::json claims = JwtClaims(token.value);
  double seconds = 0;
  if (auto expires_in = answer.find("expires_in"); expires_in != answer.end()) {
    if (!PositiveSeconds(*expires_in, &seconds)) {
      return Error(
          config, absl::StatusCode::kUnknown,
          absl::StrCat("expires_in is ", expires_in->dump(), ", not a positive number of seconds"));
    }
    token.expires_at = now + absl::Seconds(seconds);
  } else if (claims.is_object() && claims.contains("exp") && claims["exp"].is_number()) {
    token.expires_at = absl::FromUnixMillis(
        static_cast<int64_t>(std::llround(claims["exp"].get<double>() * 1000)));
  } else {
    return Error(config, absl::StatusCode::kUnknown,
                 "the answer has no expires_in and the token is not a JWT with an exp claim");
  }
  if (token.expires_at <= now) {
    return Error(config, absl::StatusCode::kUnknown, "the token has already expired");
  }
  token.principal = config.client_id;
  if (claims.is_object()) {
    if (auto sub = claims.find("sub");
        sub != claims.end() && sub->is_string() && !sub->get<std::string>().empty()) {
      token.principal = sub->get<std::string>();
    }
  }
  return token;
}

}  // namespace internal

absl::StatusOr<std::unique_ptr<OidcTokenSource>> OidcTokenSource::Create(
    OidcClientConfig config, OidcTokenSourceOptions options) {
  if (!absl::StartsWith(config.token_endpoint, "https://") &&
      !absl::StartsWith(config.token_endpoint, "http://")) {
    return absl::InvalidArgumentError(absl::StrCat("OAuth token endpoint \"", config.token_endpoint,
                                                   "\" is not an http:// or https:// URL"));
  }
  if (config.client_id.empty() || config.client_secret.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("OAuth token endpoint ", config.token_endpoint,
                                                   ": a client id and a client secret are needed"));
  }
  if (options.timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("OAuth token request timeout must be positive");
  }
  // Once per process, before any handle exists (curl_global_init is not thread-safe in every
  // libcurl build).
  static const CURLcode global_init = curl_global_init(CURL_GLOBAL_DEFAULT);
  if (global_init != CURLE_OK) {
    return absl::InternalError(
        absl::StrCat("libcurl initialisation failed: ", curl_easy_strerror(global_init)));
  }
  return std::unique_ptr<OidcTokenSource>(new OidcTokenSource(std::move(config), options));
}

absl::StatusOr<OidcToken> OidcTokenSource::Fetch() const {
  std::unique_ptr<CURL, CurlDeleter> curl(curl_easy_init());
  if (curl == nullptr) return absl::InternalError("curl_easy_init failed");
  std::string form = "grant_type=client_credentials";
  if (!config_.scopes.empty()) {
    absl::StrAppend(&form, "&scope=", internal::FormUrlEncode(absl::StrJoin(config_.scopes, " ")));
  }
  const std::string authorization =
      absl::StrCat("Authorization: Basic ", BasicCredentials(config_));
  curl_slist* raw_headers = nullptr;
  for (const std::string& header :
       {authorization, std::string("Content-Type: application/x-www-form-urlencoded"),
        std::string("Accept: application/json")}) {
    curl_slist* next = curl_slist_append(raw_headers, header.c_str());
    if (next == nullptr) {
      curl_slist_free_all(raw_headers);
      return absl::InternalError("curl_slist_append failed");
    }
    raw_headers = next;
  }
  std::unique_ptr<curl_slist, SlistDeleter> headers(raw_headers);
  std::string body;
  char error_buffer[CURL_ERROR_SIZE] = {};
  const long timeout_ms = static_cast<long>(absl::ToInt64Milliseconds(options_.timeout));
  CURL* c = curl.get();
  // Options on a fresh easy handle only fail for out-of-memory or an unknown option; the
  // transfer reports either.
  (void)curl_easy_setopt(c, CURLOPT_URL, config_.token_endpoint.c_str());
  (void)curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  (void)curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);  // other threads; no SIGALRM for DNS
  (void)curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
  (void)curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
  (void)curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
  (void)curl_easy_setopt(c, CURLOPT_USERAGENT, "klag");
  (void)curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers.get());
  (void)curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, static_cast<long>(form.size()));
  (void)curl_easy_setopt(c, CURLOPT_POSTFIELDS, form.c_str());
  (void)curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, &AppendBody);
  (void)curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
  (void)curl_easy_setopt(c, CURLOPT_ERRORBUFFER, error_buffer);
  const CURLcode res = curl_easy_perform(c);
  if (res != CURLE_OK) {
    const std::string detail = error_buffer[0] != '\0' ? error_buffer : curl_easy_strerror(res);
    if (res == CURLE_WRITE_ERROR) {
      return Error(config_, absl::StatusCode::kUnknown,
                   absl::StrCat("answer larger than ", kMaxResponseBytes, " bytes"));
    }
    return Error(config_, CodeForCurl(res), absl::StrCat("request failed: ", detail));
  }
  long http_status = 0;
  (void)curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &http_status);
  return internal::ParseTokenResponse(config_, http_status, body, absl::Now());
}

}  // namespace klag::kafka
