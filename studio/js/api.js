// The studio's one door to the API: a bearer token per request, azureml's error bodies as ApiError.
// The API lives one folder up from the page (/api/studio/ → /api/), whatever the app's route prefix.

const SESSION_KEY = "amlpipe.studio.session";

/** An API answer that was not 2xx: its status, and azureml's error code and message. */
export class ApiError extends Error {
  constructor(status, code, message, target) {
    super(message);
    this.status = status;
    this.code = code;
    this.target = target;
  }
}

export const apiBase = new URL("../", window.location.href);

/** The signed-in session kept for this tab: {token, me} or null. */
export function loadSession() {
  try {
    const raw = window.sessionStorage.getItem(SESSION_KEY);
    return raw ? JSON.parse(raw) : null;
  } catch {
    return null;
  }
}

export function saveSession(session) {
  window.sessionStorage.setItem(SESSION_KEY, JSON.stringify(session));
}

export function clearSession() {
  window.sessionStorage.removeItem(SESSION_KEY);
}

async function errorOf(response) {
  let code = `HTTP${response.status}`;
  let message = `${response.status} ${response.statusText}`;
  let target;
  try {
    const body = await response.json();
    if (body && body.Error) {
      code = body.Error.Code || code;
      message = body.Error.Message || message;
      target = body.Error.Target;
    } else if (body && body.error) {
      code = body.error;
      message = body.error_description || message;
    }
  } catch {
    // not JSON: keep the status line
  }
  return new ApiError(response.status, code, message, target);
}

/** Call `path` (relative to /api/) with the session's token; the JSON body, or throws ApiError. */
export async function call(path, { method = "GET", token, body, form } = {}) {
  const headers = { Accept: "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  let payload;
  if (form) {
    headers["Content-Type"] = "application/x-www-form-urlencoded";
    payload = new URLSearchParams(form).toString();
  } else if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  let response;
  try {
    // No cookies or HTTP auth: the bearer token is the only credential, and a 401 from the token endpoint
    // (which challenges with Basic) must not open the browser's own password prompt.
    response = await fetch(new URL(path, apiBase), { method, headers, body: payload, cache: "no-store", credentials: "omit" });
  } catch (error) {
    throw new ApiError(0, "Unreachable", `The service did not answer (${error.message}).`);
  }
  if (!response.ok) throw await errorOf(response);
  if (response.status === 204) return null;
  return response.json();
}

/** Trade a service principal's id and secret for a token at the local token endpoint. */
export async function tokenFor(clientId, clientSecret) {
  const answer = await call("oauth2/token", {
    method: "POST",
    form: { grant_type: "client_credentials", client_id: clientId, client_secret: clientSecret },
  });
  return answer.access_token;
}

/** A path segment, escaped (step names have spaces; run ids are GUIDs). */
export function seg(value) {
  return encodeURIComponent(value);
}
