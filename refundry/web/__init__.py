"""The pages people use, server-rendered beside the API by the same app (docs/pages.md).

* ``pages``       the page router (errors become HTML pages), ``install`` mounts it all
* ``session``     the session cookie (the shop's sign-in link, or the desk's sign-in);
                  the forms' CSRF token
* ``templating``  Jinja2 in zh-CN and en, the request's locale, the security headers
* ``formats``     the one filter set: money, dates, spans and percentages through Babel
                  (CLDR)
* ``charts``      the dashboard's bar charts, drawn as inline SVG on the server
* ``routes/``     one module per area (``account``: sign-in, language; ``orders``: the
                  customer's orders, refund requests and cases; ``desk``: staff sign-in,
                  the agents' queue and a case's actions; ``dashboard``: the desk's
                  operations dashboard; ``merchant``: a merchant's returns, received and
                  inspected), each with its template folder under ``templates/``
* ``static/``     the pages' own style sheet (no CDN, no inline style or script)

Pages call the services' read models, use cases and access module, never the store
(tests/api/test_layering.py), so a page and an endpoint cannot disagree.
"""

__all__: list[str] = []
