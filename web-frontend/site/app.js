/* Cultivate web frontend. No framework, no inline code (strict CSP), data rendered with textContent. */
(function () {
  'use strict';

  var API = '/api/v1/activities';

  var form = document.getElementById('new-activity');
  var list = document.getElementById('activities');
  var statusEl = document.getElementById('status');
  var emptyEl = document.getElementById('empty');
  var refreshButton = document.getElementById('refresh');
  var submitButton = form.querySelector('button[type="submit"]');

  var dateFormat = null;
  try {
    dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });
  } catch (e) {
    dateFormat = null;
  }

  function setStatus(message, kind) {
    statusEl.textContent = message || '';
    statusEl.className = 'status' + (kind ? ' status-' + kind : '');
  }

  /* An error whose message is meant for the user. */
  function ApiError(message, status) {
    this.name = 'ApiError';
    this.message = message;
    this.status = status;
  }
  ApiError.prototype = Object.create(Error.prototype);
  ApiError.prototype.constructor = ApiError;

  var UNREACHABLE = 'Cannot reach the Cultivate API. Check your connection and try again in a moment.';

  /* fetch + JSON parsing + error mapping. Resolves with the parsed body. */
  function request(method, url, body) {
    var options = { method: method, headers: { Accept: 'application/json' }, credentials: 'same-origin' };
    if (body !== undefined) {
      options.headers['Content-Type'] = 'application/json';
      options.body = JSON.stringify(body);
    }
    return fetch(url, options).then(
      function (response) {
        return response.text().then(function (text) {
          var data = null;
          if (text) {
            try {
              data = JSON.parse(text);
            } catch (e) {
              data = null;
            }
          }
          if (response.ok) {
            if (data === null) {
              throw new ApiError('The Cultivate API sent an unexpected response.', response.status);
            }
            return data;
          }
          if (response.status === 502 || response.status === 503 || response.status === 504) {
            throw new ApiError('The Cultivate API is unavailable right now (HTTP ' + response.status + '). Please try again in a moment.', response.status);
          }
          var message = data && typeof data.error === 'string' && data.error
            ? data.error
            : 'Request failed (HTTP ' + response.status + ').';
          if (response.status === 413) {
            message = 'That activity is too large. Please shorten the notes. (' + message + ')';
          }
          throw new ApiError(message, response.status);
        });
      },
      function () {
        /* fetch rejects only on network failure: the API (or this server) is unreachable. */
        throw new ApiError(UNREACHABLE, 0);
      }
    );
  }

  function messageOf(error) {
    return error instanceof ApiError ? error.message : 'Something went wrong: ' + String(error && error.message || error);
  }

  function formatDate(value) {
    if (typeof value !== 'string' || !value) {
      return '';
    }
    var date = new Date(value);
    if (isNaN(date.getTime())) {
      return value;
    }
    return dateFormat ? dateFormat.format(date) : date.toLocaleString();
  }

  function renderItem(activity) {
    var item = document.createElement('li');
    item.className = 'activity';
    if (activity && activity.id !== undefined && activity.id !== null) {
      item.setAttribute('data-id', String(activity.id));
    }

    var title = document.createElement('h3');
    title.className = 'activity-title';
    title.textContent = activity && activity.title != null ? String(activity.title) : '(untitled)';
    item.appendChild(title);

    if (activity && activity.created_at) {
      var time = document.createElement('time');
      time.className = 'activity-date';
      time.setAttribute('datetime', String(activity.created_at));
      time.textContent = formatDate(String(activity.created_at));
      item.appendChild(time);
    }

    if (activity && activity.notes) {
      var notes = document.createElement('p');
      notes.className = 'activity-notes';
      notes.textContent = String(activity.notes);
      item.appendChild(notes);
    }
    return item;
  }

  function updateEmpty() {
    emptyEl.hidden = list.children.length > 0;
  }

  function renderList(activities) {
    var fragment = document.createDocumentFragment();
    activities.forEach(function (activity) {
      fragment.appendChild(renderItem(activity));
    });
    while (list.firstChild) {
      list.removeChild(list.firstChild);
    }
    list.appendChild(fragment);
    updateEmpty();
  }

  var loading = false;
  function load() {
    if (loading) {
      return Promise.resolve();
    }
    loading = true;
    list.setAttribute('aria-busy', 'true');
    refreshButton.disabled = true;
    setStatus('Loading activities…', 'info');
    return request('GET', API)
      .then(function (data) {
        if (!Array.isArray(data)) {
          throw new ApiError('The Cultivate API sent an unexpected response.', 200);
        }
        renderList(data);
        setStatus('', null);
      })
      .catch(function (error) {
        emptyEl.hidden = true;
        setStatus(messageOf(error), 'error');
      })
      .then(function () {
        loading = false;
        list.setAttribute('aria-busy', 'false');
        refreshButton.disabled = false;
      });
  }

  function submit(event) {
    event.preventDefault();
    var titleInput = form.elements.namedItem('title');
    var notesInput = form.elements.namedItem('notes');
    var title = titleInput.value.trim();
    var notes = notesInput.value.trim();

    if (!title) {
      setStatus('Please enter a title.', 'error');
      titleInput.setAttribute('aria-invalid', 'true');
      titleInput.focus();
      return;
    }
    titleInput.removeAttribute('aria-invalid');

    submitButton.disabled = true;
    form.setAttribute('aria-busy', 'true');
    setStatus('Saving…', 'info');

    request('POST', API, { title: title, notes: notes })
      .then(function (created) {
        list.insertBefore(renderItem(created), list.firstChild);
        updateEmpty();
        form.reset();
        setStatus('Added “' + (created && created.title != null ? String(created.title) : title) + '”.', 'success');
        titleInput.focus();
      })
      .catch(function (error) {
        setStatus(messageOf(error), 'error');
      })
      .then(function () {
        submitButton.disabled = false;
        form.removeAttribute('aria-busy');
      });
  }

  form.addEventListener('submit', submit);
  form.elements.namedItem('title').addEventListener('input', function (event) {
    event.target.removeAttribute('aria-invalid');
  });
  refreshButton.addEventListener('click', function () {
    load();
  });

  load();
}());
