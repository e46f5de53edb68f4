/* Response-side constants: cached Date, reason phrases, error -> status. */
#include "conn.h"

#include <string.h>
#include <time.h>

static char date_buf[30] = "Thu, 01 Jan 1970 00:00:00 GMT";
static int64_t date_sec = -1;
static int date_frozen; /* tests: the date stays what lh_date_freeze set */

/* formatted at most once a second; the coarse clock costs no syscall */
const char *lh_date(void) {
  if (!date_frozen) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME_COARSE, &ts);
    if ((int64_t)ts.tv_sec != date_sec) lh_date_update((int64_t)ts.tv_sec);
  }
  return date_buf;
}

void lh_date_freeze(int64_t t) {
  date_frozen = 0;
  lh_date_update(t);
  date_frozen = 1;
}

void lh_date_update(int64_t now) {
  static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  if (now == date_sec) return;
  date_sec = now;
  time_t t = (time_t)now;
  struct tm tm;
  gmtime_r(&t, &tm);
  /* IMF-fixdate, RFC 9110 5.6.7 */
  char *d = date_buf;
  memcpy(d, days[tm.tm_wday], 3);
  d[3] = ',';
  d[4] = ' ';
  d[5] = (char)('0' + tm.tm_mday / 10);
  d[6] = (char)('0' + tm.tm_mday % 10);
  d[7] = ' ';
  memcpy(d + 8, months[tm.tm_mon], 3);
  d[11] = ' ';
  int y = tm.tm_year + 1900;
  d[12] = (char)('0' + y / 1000 % 10);
  d[13] = (char)('0' + y / 100 % 10);
  d[14] = (char)('0' + y / 10 % 10);
  d[15] = (char)('0' + y % 10);
  d[16] = ' ';
  d[17] = (char)('0' + tm.tm_hour / 10);
  d[18] = (char)('0' + tm.tm_hour % 10);
  d[19] = ':';
  d[20] = (char)('0' + tm.tm_min / 10);
  d[21] = (char)('0' + tm.tm_min % 10);
  d[22] = ':';
  d[23] = (char)('0' + tm.tm_sec / 10);
  d[24] = (char)('0' + tm.tm_sec % 10);
  memcpy(d + 25, " GMT", 4);
  d[29] = 0;
}

const char *lh_reason(int s) {
  switch (s) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 102: return "Processing";
    case 103: return "Early Hints";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 203: return "Non-Authoritative Information";
    case 204: return "No Content";
    case 205: return "Reset Content";
    case 206: return "Partial Content";
    case 207: return "Multi-Status";
    case 300: return "Multiple Choices";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 402: return "Payment Required";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 407: return "Proxy Authentication Required";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 417: return "Expectation Failed";
    case 418: return "I'm a teapot";
    case 421: return "Misdirected Request";
    case 422: return "Unprocessable Content";
    case 425: return "Too Early";
    case 426: return "Upgrade Required";
    case 428: return "Precondition Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 451: return "Unavailable For Legal Reasons";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    case 507: return "Insufficient Storage";
    case 511: return "Network Authentication Required";
    default: return "";
  }
}

int lh_error_status(int err) {
  switch (err) {
    case LH_EPARSE_TOO_LARGE:
    case LH_EPARSE_TOO_MANY: return 431;
    case LH_EPARSE_URI_TOO_LONG: return 414;
    case LH_EPARSE_VERSION_H2: return 505;
    case LH_EPARSE_TE_UNSUPPORTED:
    case LH_EPARSE_METHOD_UNKNOWN: return 501;
    case LH_EHEADER_TIMEOUT:
    case LH_ETIMEOUT: return 408;
    case LH_EBODY_TOO_LARGE:
    case LH_EPARSE_CHUNK_EXT: return 413;
    case LH_EUSER_SERVICE:
    case LH_EUSER_HEADER:
    case LH_EUSER_STATUS:
    case LH_EUSER_BODY: return 500;
    default: return 400;
  }
}
