// The taskq dashboard's pages: each view is drawn from the REST API and redrawn when the
// live stream (/api/stream) says something changed. Text from the cluster is only ever set
// as textContent, never as HTML: events come from anyone with access to the broker.
(function () {
  "use strict";

  var content = document.getElementById("content");
  var STATES = ["RECEIVED", "STARTED", "SUCCESS", "FAILURE", "RETRY", "REVOKED", "REJECTED", "PENDING"];
  var COLORS = { received: "#8a94a3", succeeded: "#1f9d55", failed: "#d64545", retried: "#c98a10", revoked: "#7d4fc4" };
  var current = null; // the view shown: {name, refresh}
  var overview = null;

  // ---- Helpers ---------------------------------------------------------------------

  function h(tag, attrs) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (key) {
      var value = attrs[key];
      if (value === null || value === undefined || value === false) return;
      if (key.slice(0, 2) === "on") node.addEventListener(key.slice(2), value);
      else if (key === "text") node.textContent = value;
      else node.setAttribute(key, value === true ? "" : value);
    });
    for (var i = 2; i < arguments.length; i++) append(node, arguments[i]);
    return node;
  }

  function append(node, child) {
    if (child === null || child === undefined || child === false) return;
    if (Array.isArray(child)) { child.forEach(function (c) { append(node, c); }); return; }
    node.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
  }

  function cookie(name) {
    var found = document.cookie.split("; ").filter(function (c) { return c.indexOf(name + "=") === 0; })[0];
    return found ? decodeURIComponent(found.slice(name.length + 1)) : "";
  }

  function api(path, options) {
    options = options || {};
    var init = { method: options.method || "GET", headers: { Accept: "application/json" }, credentials: "same-origin" };
    if (init.method === "POST") {
      init.headers["Content-Type"] = "application/json";
      init.headers["X-CSRF-Token"] = cookie("taskq_dashboard_csrf");
      init.body = JSON.stringify(options.body || {});
    }
    return fetch(path, init).then(function (response) {
      if (response.status === 401) { location.href = "/login?next=" + encodeURIComponent(location.pathname); throw new Error("log in first"); }
      return response.json().then(function (data) {
        if (!response.ok) throw new Error(data.error || response.statusText);
        return data;
      });
    });
  }

  function notice(text, isError) {
    var box = document.getElementById("notice");
    box.textContent = text;
    box.className = isError ? "error" : "";
    box.hidden = false;
    clearTimeout(notice.timer);
    notice.timer = setTimeout(function () { box.hidden = true; }, 5000);
  }

  function act(path, body, done) {
    return api(path, { method: "POST", body: body }).then(function (data) {
      var replies = data.replies || [];
      var answered = replies.map(function (r) { return Object.keys(r).join(", "); }).join("; ");
      var refused = [];
      replies.forEach(function (r) {
        Object.keys(r).forEach(function (host) {
          if (r[host] && typeof r[host] === "object" && r[host].error) refused.push(host + ": " + r[host].error);
        });
      });
      if (refused.length) notice("Refused by " + refused.join("; "), true);
      else notice("Done" + (answered ? " (answered: " + answered + ")" : ""));
      if (done) done(data);
      refresh();
    }).catch(function (error) { notice(error.message, true); });
  }

  function when(seconds) {
    if (seconds === null || seconds === undefined) return "—";
    return new Date(seconds * 1000).toLocaleString();
  }

  function ago(seconds) {
    if (!seconds) return "never";
    var delta = Math.max(0, Date.now() / 1000 - seconds);
    if (delta < 60) return Math.round(delta) + " s ago";
    if (delta < 3600) return Math.round(delta / 60) + " min ago";
    return Math.round(delta / 3600) + " h ago";
  }

  function badge(state) { return h("span", { class: "badge " + state, text: state }); }
  function link(href, text) { return h("a", { href: href, "data-link": true, text: text }); }
  function taskLink(id, text) { return link("/tasks/" + encodeURIComponent(id), text || id); }
  function runtime(value) {
    if (value === null || value === undefined) return "—";
    if (value >= 1) return value.toFixed(2) + " s";
    return value >= 0.001 ? (value * 1000).toFixed(1) + " ms" : (value * 1e6).toFixed(0) + " µs";
  }

  function table(id, headers, rows) {
    return h("table", { id: id },
      h("thead", {}, h("tr", {}, headers.map(function (t) { return h("th", { text: t }); }))),
      h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: headers.length, class: "muted", text: "Nothing yet." }))));
  }

  // ---- Views -----------------------------------------------------------------------

  function viewOverview() {
    var cards = h("div", { class: "cards", id: "overview-cards" });
    var rates = h("div", { class: "card" }, h("h2", { text: "Tasks per 10 s" }), h("div", { id: "chart-rates" }),
      h("div", { class: "legend" }, Object.keys(COLORS).map(function (k) { return h("span", { style: "--c:" + COLORS[k], text: k }); })));
    var runtimes = h("div", { class: "card" }, h("h2", { text: "Runtime of tasks that succeeded" }), h("div", { id: "chart-runtime" }),
      h("div", { class: "legend" }, h("span", { style: "--c:#2f6fde", text: "mean" }), h("span", { style: "--c:#c98a10", text: "longest" })));
    content.replaceChildren(h("h1", { text: "Overview" }), cards, h("div", { class: "charts" }, rates, runtimes));
    function draw() {
      return Promise.all([api("/api/overview"), api("/api/rates?minutes=30")]).then(function (answers) {
        var o = answers[0], r = answers[1];
        var numbers = [["Workers online", o.workers_online + " / " + o.workers], ["Tasks in history", o.tasks],
          ["Succeeded", o.by_state.SUCCESS || 0], ["Failed", o.by_state.FAILURE || 0], ["Running", o.by_state.STARTED || 0],
          ["Events taken", o.events], ["Malformed skipped", o.malformed_events + o.malformed_records]];
        cards.replaceChildren.apply(cards, numbers.map(function (n) {
          return h("div", { class: "card" }, h("div", { class: "value", text: n[1] }), h("div", { class: "label", text: n[0] }));
        }));
        // every bucket of the window, those without a task at zero
        var byTime = {};
        r.points.forEach(function (p) { byTime[p.time] = p; });
        var buckets = [];
        for (var t = Math.floor(r.since / r.bucket) * r.bucket; t <= r.now; t += r.bucket) buckets.push(byTime[t] || { time: t });
        var series = Object.keys(COLORS).map(function (name) {
          return { name: name, color: COLORS[name], points: buckets.map(function (p) { return [p.time + r.bucket / 2, p[name] || 0]; }) };
        });
        window.lineChart(document.getElementById("chart-rates"), series, { from: r.since, to: r.now, title: "tasks per 10 s" });
        var withRuntime = r.points.filter(function (p) { return p.succeeded > 0; });
        window.lineChart(document.getElementById("chart-runtime"), [
          { name: "mean", color: "#2f6fde", points: withRuntime.map(function (p) { return [p.time + r.bucket / 2, p.runtime_mean]; }) },
          { name: "max", color: "#c98a10", points: withRuntime.map(function (p) { return [p.time + r.bucket / 2, p.runtime_max]; }) }
        ], { from: r.since, to: r.now, unit: "s", title: "runtime" });
      });
    }
    return draw;
  }

  function viewWorkers() {
    var body = h("div", { id: "workers" });
    var name = h("input", { id: "rate-task", list: "task-names", placeholder: "task name", required: true });
    var rate = h("input", { id: "rate-value", placeholder: "10/m (empty: none)", size: 14 });
    var form = h("form", { class: "filters", onsubmit: function (e) {
      e.preventDefault();
      act("/api/rate-limit", { task_name: name.value, rate_limit: rate.value || null });
    } }, h("label", {}, "Task", name), h("label", {}, "Rate limit", rate), h("button", { type: "submit", text: "Set rate limit" }),
    h("datalist", { id: "task-names" }));
    content.replaceChildren(h("h1", { text: "Workers" }), form, body);
    api("/api/task-names").then(function (d) {
      form.querySelector("datalist").replaceChildren.apply(form.querySelector("datalist"), d.names.map(function (n) { return h("option", { value: n }); }));
    });
    return function () {
      return api("/api/workers").then(function (data) {
        var rows = data.workers.map(function (w) {
          var host = encodeURIComponent(w.hostname);
          var queues = (w.queues || []).map(function (q) {
            return h("span", { class: "chip" }, q, h("button", { class: "small", title: "stop consuming " + q, "data-cancel": q, text: "×",
              onclick: function () { act("/api/workers/" + host + "/consumers/cancel", { queue: q }); } }));
          });
          return h("tr", { "data-worker": w.hostname },
            h("td", {}, h("strong", { text: w.hostname }), h("div", { class: "muted", text: w.software || "" })),
            h("td", {}, badge(w.online ? "online" : "offline")),
            h("td", { text: (w.pool || "?") + " × " + (w.concurrency === null || w.concurrency === undefined ? "?" : w.concurrency) }),
            h("td", { text: (w.loadavg || []).map(function (v) { return v.toFixed(2); }).join(" ") || "—" }),
            h("td", { text: String(w.active_tasks ? w.active_tasks.length : w.active) }),
            h("td", { text: String(w.reserved_tasks ? w.reserved_tasks.length : 0) }),
            h("td", { text: String(w.processed || 0) }),
            h("td", { text: ago(w.last_heartbeat) }),
            h("td", {}, queues),
            h("td", {},
              h("button", { class: "small secondary", text: "+1", title: "grow the pool", onclick: function () { act("/api/workers/" + host + "/pool/grow", { n: 1 }); } }), " ",
              h("button", { class: "small secondary", text: "−1", title: "shrink the pool", onclick: function () { act("/api/workers/" + host + "/pool/shrink", { n: 1 }); } })));
        });
        body.replaceChildren(table("workers-table", ["Worker", "Status", "Pool", "Load", "Active", "Reserved", "Processed", "Heartbeat", "Queues", "Pool size"], rows));
      });
    };
  }

  function viewQueues() {
    var body = h("div", {});
    content.replaceChildren(h("h1", { text: "Queues" }), body);
    return function () {
      return api("/api/queues").then(function (data) {
        body.replaceChildren(table("queues-table", ["Queue", "Messages", "Consumers"], data.queues.map(function (q) {
          return h("tr", {}, h("td", { class: "mono", text: q.name }),
            h("td", { text: q.depth === null ? "unknown (the broker cannot tell)" : String(q.depth) }),
            h("td", { text: q.consumers.join(", ") || "none" }));
        })));
      });
    };
  }

  function viewTasks() {
    var params = new URLSearchParams(location.search);
    var fields = {
      name: h("input", { id: "filter-name", name: "name", list: "task-names", value: params.get("name") || "", placeholder: "proj.add or proj.*" }),
      state: h("select", { id: "filter-state", name: "state" }, h("option", { value: "", text: "any" }),
        STATES.map(function (s) { return h("option", { value: s, text: s, selected: params.get("state") === s }); })),
      id: h("input", { id: "filter-id", name: "id", value: params.get("id") || "", placeholder: "id prefix" }),
      search: h("input", { id: "filter-search", name: "search", value: params.get("search") || "", placeholder: "text in arguments" })
    };
    var offset = Number(params.get("offset") || 0), limit = 50;
    var form = h("form", { class: "filters", id: "task-filters", onsubmit: function (e) {
      e.preventDefault(); offset = 0; update();
    } }, h("label", {}, "Name", fields.name), h("label", {}, "State", fields.state), h("label", {}, "Id", fields.id),
    h("label", {}, "Arguments", fields.search), h("button", { type: "submit", text: "Search" }), h("datalist", { id: "task-names" }));
    fields.state.addEventListener("change", function () { offset = 0; update(); });
    var body = h("div", {});
    var pager = h("div", { class: "pager" });
    content.replaceChildren(h("h1", { text: "Tasks" }), form, body, pager);
    api("/api/task-names").then(function (d) {
      form.querySelector("datalist").replaceChildren.apply(form.querySelector("datalist"), d.names.map(function (n) { return h("option", { value: n }); }));
    });
    function query() {
      var q = new URLSearchParams();
      Object.keys(fields).forEach(function (k) { if (fields[k].value) q.set(k, fields[k].value); });
      if (offset) q.set("offset", offset);
      return q;
    }
    function update() {
      history.replaceState(null, "", "/tasks" + (query().toString() ? "?" + query() : ""));
      return draw();
    }
    function draw() {
      var q = query(); q.set("limit", limit);
      return api("/api/tasks?" + q).then(function (data) {
        body.replaceChildren(table("tasks-table", ["Task", "Id", "State", "Arguments", "Worker", "Received", "Runtime"], data.tasks.map(function (t) {
          return h("tr", { "data-task": t.uuid, "data-state": t.state },
            h("td", { text: t.name || "?" }), h("td", { class: "mono" }, taskLink(t.uuid)), h("td", {}, badge(t.state)),
            h("td", { class: "mono args", title: (t.args || "") + " " + (t.kwargs || ""), text: (t.args || "") + " " + (t.kwargs && t.kwargs !== "{}" ? t.kwargs : "") }),
            h("td", { text: t.worker || "—" }), h("td", { text: when(t.first_seen) }), h("td", { text: runtime(t.runtime) }));
        })));
        var last = Math.min(data.total, data.offset + data.tasks.length);
        pager.replaceChildren(
          h("button", { class: "secondary", text: "← Newer", disabled: offset === 0, onclick: function () { offset = Math.max(0, offset - limit); update(); } }),
          h("span", { id: "tasks-count", text: (data.total ? data.offset + 1 : 0) + "–" + last + " of " + data.total }),
          h("button", { class: "secondary", text: "Older →", disabled: last >= data.total, onclick: function () { offset += limit; update(); } }));
      });
    }
    return draw;
  }

  function tree(node, currentId) {
    if (!node || typeof node !== "object") return null;
    var kind = h("span", { class: "kind", text: node.kind || "?" });
    var label;
    if (node.kind === "task") {
      label = h("span", { class: node.id === currentId ? "current" : "" }, kind, taskLink(node.id, (node.task ? node.task + " " : "") + String(node.id).slice(0, 8)), " ", badge(node.state || "PENDING"));
    } else {
      label = h("span", {}, kind, node.state ? badge(node.state) : null);
    }
    var parts = [].concat(node.steps || [], node.members || [], node.header ? [node.header] : [], node.body ? [node.body] : [], node.children || []);
    return h("li", {}, label, parts.length ? h("ul", {}, parts.map(function (p) { return tree(p, currentId); })) : null);
  }

  function viewTask(id) {
    var head = h("div", {});
    var body = h("div", {});
    var workflow = h("div", { class: "tree", id: "workflow" });
    content.replaceChildren(head, body, h("h2", { text: "Workflow" }), workflow);
    var confirmNeeded = true;
    head.replaceChildren(h("h1", {}, "Task ", h("span", { class: "mono", text: id })),
      h("div", { class: "actions" },
        h("button", { id: "revoke", class: "danger", text: "Revoke", onclick: function () {
          if (confirmNeeded && !window.confirm("Revoke this task? A waiting task will never run.")) return;
          act("/api/tasks/" + encodeURIComponent(id) + "/revoke", {});
        } }),
        h("button", { id: "terminate", class: "danger", text: "Terminate", onclick: function () {
          if (!window.confirm("Revoke and stop this task where it runs?")) return;
          act("/api/tasks/" + encodeURIComponent(id) + "/terminate", {});
        } })));
    function draw() {
      var wf = api("/api/tasks/" + encodeURIComponent(id) + "/workflow").then(function (data) {
        workflow.replaceChildren(data.tree ? h("ul", {}, tree(data.tree, id)) : h("p", { class: "muted", text: data.error || "No workflow." }));
      }).catch(function () {});
      var task = api("/api/tasks/" + encodeURIComponent(id)).then(function (t) {
        var record = t.record || {};
        var rows = [["Name", t.name], ["State", badge(t.state)], ["Worker", t.worker], ["Arguments", t.args], ["Keyword arguments", t.kwargs],
          ["Retries", t.retries], ["ETA", t.eta], ["Expires", t.expires], ["Runtime", runtime(t.runtime)], ["Queue", t.queue],
          ["Parent", t.parent_id ? taskLink(t.parent_id) : null], ["Root", t.root_id && t.root_id !== t.uuid ? taskLink(t.root_id) : null],
          ["Result", t.result], ["Stored state", record.status], ["Stored result", record.result]];
        var dl = h("dl", { class: "fields" });
        rows.forEach(function (r) {
          if (r[1] === null || r[1] === undefined || r[1] === "") return;
          dl.append(h("dt", { text: r[0] }), h("dd", { class: r[0] === "State" ? "" : "mono", id: r[0] === "State" ? "task-state" : null, "data-state": r[0] === "State" ? t.state : null }, r[1]));
        });
        var parts = [dl];
        if (t.exception) parts.push(h("h2", { text: "Exception" }), h("pre", { text: t.exception }));
        var trace = t.traceback || record.traceback;
        if (trace) parts.push(h("h2", { text: "Traceback" }), h("pre", { id: "traceback", text: trace }));
        parts.push(h("h2", { text: "State history" }), table("history-table", ["Event", "When", "Worker"], (t.events || []).map(function (e) {
          return h("tr", {}, h("td", { text: e.type }), h("td", { text: when(e.timestamp) }), h("td", { text: e.hostname || "—" }));
        })));
        if (t.children && t.children.length) {
          parts.push(h("h2", { text: "Tasks it sent" }), table("children-table", ["Task", "Id", "State"], t.children.map(function (c) {
            return h("tr", {}, h("td", { text: c.name || "?" }), h("td", { class: "mono" }, taskLink(c.uuid)), h("td", {}, badge(c.state)));
          })));
        }
        body.replaceChildren.apply(body, parts);
      }).catch(function (error) { body.replaceChildren(h("p", { class: "muted", text: error.message })); });
      return Promise.all([wf, task]);
    }
    return draw;
  }

  // ---- Routing and live updates ------------------------------------------------------

  function route() {
    var path = location.pathname;
    var name, draw;
    if (path === "/workers") { name = "workers"; draw = viewWorkers(); }
    else if (path === "/queues") { name = "queues"; draw = viewQueues(); }
    else if (path === "/tasks") { name = "tasks"; draw = viewTasks(); }
    else if (path.indexOf("/tasks/") === 0) { name = "tasks"; draw = viewTask(decodeURIComponent(path.slice(7))); }
    else { name = "overview"; draw = viewOverview(); }
    document.querySelectorAll("header nav a").forEach(function (a) { a.classList.toggle("active", a.dataset.view === name); });
    current = { name: name, draw: draw };
    refresh();
  }

  var drawing = false, again = false;
  function refresh() {
    if (!current) return;
    if (drawing) { again = true; return; }
    drawing = true;
    Promise.resolve(current.draw()).catch(function (error) { notice(error.message, true); }).then(function () {
      drawing = false;
      if (again) { again = false; refresh(); }
    });
  }

  document.addEventListener("click", function (event) {
    var anchor = event.target.closest && event.target.closest("a[data-link]");
    if (!anchor || event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) return;
    event.preventDefault();
    history.pushState(null, "", anchor.getAttribute("href"));
    route();
  });
  window.addEventListener("popstate", route);

  function live() {
    var status = document.getElementById("live-status");
    var source = new EventSource("/api/stream");
    source.addEventListener("open", function () { status.textContent = "live"; status.className = "live on"; });
    source.addEventListener("error", function () { status.textContent = "reconnecting"; status.className = "live off"; });
    source.addEventListener("update", function (event) {
      overview = JSON.parse(event.data);
      status.textContent = "live";
      status.className = "live on";
      document.body.dataset.version = overview.version;
      refresh();
    });
  }

  route();
  live();
})();
