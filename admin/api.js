// The admin API client and small DOM helpers. Everything user-supplied is
// rendered through textContent: nothing here parses HTML.

const STORAGE = "mg-admin-key";

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export const session = {
  get key() {
    return sessionStorage.getItem(STORAGE);
  },
  set key(value) {
    if (value) sessionStorage.setItem(STORAGE, value);
    else sessionStorage.removeItem(STORAGE);
  },
};

/** Call the admin API; resolves to the JSON answer or throws ApiError. */
export async function api(method, path, body) {
  let response;
  try {
    response = await fetch(`/admin/api${path}`, {
      method,
      headers: { authorization: `Bearer ${session.key}`, "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
    });
  } catch (e) {
    throw new ApiError(0, `The gateway could not be reached (${e.message}).`);
  }
  let data = null;
  try {
    data = await response.json();
  } catch {
    // Not JSON: reported below with the status.
  }
  if (!response.ok) {
    const message = data?.error?.message ?? `The gateway answered ${response.status}.`;
    throw new ApiError(response.status, message);
  }
  return data;
}

/** Create an element: attributes, then children (strings become text). */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** Show (or clear, with null) the page's error message. */
export function showError(message) {
  const alert = document.getElementById("alert");
  alert.textContent = message ?? "";
  alert.hidden = !message;
}

/** Run an action; any failure is shown to the user, never swallowed. */
export async function attempt(action) {
  showError(null);
  try {
    return await action();
  } catch (e) {
    showError(e.message || String(e));
    return undefined;
  }
}

export const list = (text) =>
  text
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);

export const date = (ms) => (ms ? new Date(ms).toISOString().slice(0, 10) : "");
export const dateTime = (ms) => (ms ? new Date(ms).toISOString().slice(0, 16).replace("T", " ") : "never");
export const number = (n) => (n === null || n === undefined ? "" : Number(n).toLocaleString("en-US"));
