// The chat's web page: one WebSocket to the daemon (`/ws`), JSON objects
// each way (docs/json.md). What the server sends is data; this file turns
// it into the page. Every piece of text that came from a person (names,
// messages, rooms, reasons, topics) goes into the page as text nodes only,
// never as markup, so nothing anyone types can become an element or run.
'use strict';

(() => {
  const LOBBY = '#lobby';
  // Reconnecting, as the terminal client does (chat-client's backoff.rs).
  const FIRST_WAIT_MS = 1000;
  const MAX_WAIT_MS = 30000;
  const JITTER = 0.2;
  // Lines typed while offline that are kept to send once back (comeback.rs).
  const UNSENT_MAX = 100;
  // Scroll-back asks for the last 50, 100, ... lines; the store answers at most 500.
  const HISTORY_STEP = 50;
  const HISTORY_MAX = 500;
  // Lines kept per room; the oldest go first.
  const LOG_MAX = 3000;
  // A stored copy of a line already shown (a room's replay, a page of
  // history) is that line when speaker and text match and the times are
  // this close: the server may stamp a line and its stored copy a moment
  // apart, and our own lines are shown with the page's clock.
  const COPY_SLACK_MS = 5000;
  const ECHO_SLACK_MS = 20000;
  // Close enough to the bottom of the log to keep following new lines.
  const FOLLOW_PX = 40;

  const $ = (id) => document.getElementById(id);
  const ui = {
    app: $('app'),
    log: $('log'),
    input: $('input'),
    password: $('password'),
    send: $('send'),
    prompt: $('prompt'),
    rooms: $('rooms'),
    members: $('members'),
    membersCount: $('members-count'),
    membersToggle: $('members-toggle'),
    status: $('status'),
    retry: $('retry'),
    roomTitle: $('room-title'),
    roomTopic: $('room-topic'),
    roomCount: $('room-count'),
    joinRoom: $('join-room'),
    joinButton: $('join-button'),
    earlier: $('earlier'),
  };

  // ---- Small helpers -----------------------------------------------------

  /** An element with a class and children; strings become text nodes. */
  function el(tag, className, ...children) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    for (const child of children) {
      if (child === null || child === undefined || child === false) continue;
      node.append(typeof child === 'string' ? document.createTextNode(child) : child);
    }
    return node;
  }

  const keyOf = (room) => String(room || LOBBY).toLowerCase();
  const sameName = (a, b) => typeof a === 'string' && typeof b === 'string' && a.toLowerCase() === b.toLowerCase();
  const str = (value) => (typeof value === 'string' ? value : value === null || value === undefined ? '' : String(value));
  const pad = (n) => String(n).padStart(2, '0');
  const hhmm = (date) => `${pad(date.getHours())}:${pad(date.getMinutes())}`;
  const dayOf = (ms) => {
    const d = new Date(ms);
    return `${d.getFullYear()}-${d.getMonth()}-${d.getDate()}`;
  };

  // The server's clock, as far as its events tell: own lines are shown at
  // the server's time so that they sort among everyone else's.
  let serverOffset = 0;
  const serverNow = () => Date.now() + serverOffset;
  function heardAt(atMs) {
    if (Number.isFinite(atMs)) serverOffset = atMs - Date.now();
  }

  // ---- Rooms and their logs ----------------------------------------------

  class Room {
    constructor(name) {
      this.name = name;
      this.entries = []; // sorted by time
      this.keys = new Map(); // dedupe key -> entry
      this.unread = 0;
      this.mentioned = false;
      this.members = null; // a list of persons, {count}, or null (not known)
      this.topic = '';
      this.history = { asked: 0, waiting: false, done: false };
    }
  }

  /** @type {Map<string, Room>} */
  const rooms = new Map();
  let current = LOBBY;

  function roomFor(name) {
    const key = keyOf(name);
    let room = rooms.get(key);
    if (!room) {
      room = new Room(name || LOBBY);
      rooms.set(key, room);
      renderRooms();
    }
    return room;
  }
  const currentRoom = () => roomFor(current);

  // ---- The session -------------------------------------------------------

  const session = {
    socket: null,
    phase: 'connecting', // connecting | naming | arriving | password | in | offline | ended
    me: null, // the person we are, once welcomed
    name: null, // the name to come back as
    password: null, // kept in memory only, to come back with
    loginPassword: null, // typed for this login, kept once it works
    newPassword: null, // from /register or /password, kept once confirmed
    wasIn: false, // welcomed at least once: a new connection is a comeback
    autoNamed: false, // this connection sent our name by itself
    passwordTried: false, // this connection sent the kept password by itself
    typedName: null, // typed before the server asked
    unsent: [], // {text, entry} typed while offline
    finalReason: null, // a goodbye after which we do not come back
    refusedReason: null, // why the server turned us away at connect, if it did
    lastEcho: null, // our last line shown, struck through if the server says it was too long or muted
    hiddenCount: 0, // lines that arrived while the page was hidden, for the title
    waitMs: FIRST_WAIT_MS,
    retryAt: 0,
    retryTimer: null,
    tick: null,
    lostNoticed: false,
    // Answers the page asked for itself, shown quietly.
    quiet: { rooms: 0, who: 0 },
    historyAsks: [], // {room, n} in the order asked
  };

  function nextWait() {
    const factor = 1 - JITTER + Math.random() * 2 * JITTER;
    const wait = Math.min(session.waitMs * factor, MAX_WAIT_MS);
    session.waitMs = Math.min(session.waitMs * 2, MAX_WAIT_MS);
    return wait;
  }

  function setStatus(text, state) {
    ui.status.textContent = text;
    ui.status.className = state;
    document.body.dataset.state = state;
  }

  function setPrompt(text) {
    ui.prompt.textContent = text;
    ui.prompt.hidden = !text;
  }

  function connect() {
    clearTimeout(session.retryTimer);
    clearInterval(session.tick);
    ui.retry.hidden = true;
    session.phase = 'connecting';
    session.autoNamed = false;
    session.passwordTried = false;
    session.finalReason = null;
    session.quiet = { rooms: 0, who: 0 };
    session.historyAsks = [];
    for (const room of rooms.values()) room.history.waiting = false;
    setStatus('connecting…', 'connecting');
    const url = new URL('ws', location.href);
    url.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
    let socket;
    try {
      socket = new WebSocket(url.href);
    } catch (error) {
      session.socket = null;
      closed();
      return;
    }
    session.socket = socket;
    socket.addEventListener('message', (event) => {
      if (session.socket !== socket || typeof event.data !== 'string') return;
      let message;
      try {
        message = JSON.parse(event.data);
      } catch (error) {
        return;
      }
      if (message && typeof message.type === 'string') handle(message);
    });
    socket.addEventListener('close', () => {
      if (session.socket === socket) closed();
    });
  }

  function open() {
    return session.socket !== null && session.socket.readyState === WebSocket.OPEN;
  }

  function sendLine(line) {
    if (!open()) return false;
    session.socket.send(JSON.stringify({ line }));
    return true;
  }

  /** The socket closed: come back later, unless the server said goodbye for good. */
  function closed() {
    session.socket = null;
    const wasIn = session.phase === 'in';
    hidePassword();
    if (session.finalReason) {
      session.phase = 'ended';
      setStatus(`offline — ${session.finalReason}`, 'offline');
      setPrompt('Press Enter or “Connect now” to come back.');
      ui.retry.hidden = false;
      return;
    }
    session.phase = 'offline';
    if (wasIn && !session.lostNoticed) {
      session.lostNoticed = true;
      notice('Connection lost. Reconnecting by itself; what you type meanwhile is sent once back.', 'trouble');
    }
    const wait = nextWait();
    session.retryAt = Date.now() + wait;
    session.retryTimer = setTimeout(connect, wait);
    const why = session.refusedReason ? `${session.refusedReason}; ` : '';
    const show = () => {
      const seconds = Math.max(1, Math.ceil((session.retryAt - Date.now()) / 1000));
      setStatus(`offline — ${why}retrying in ${seconds} s`, 'offline');
    };
    show();
    session.tick = setInterval(show, 1000);
    ui.retry.hidden = false;
    if (!session.wasIn) setPrompt('Not connected yet; retrying by itself.');
  }

  // ---- What the server says ----------------------------------------------

  const handlers = {
    greeting() {
      session.phase = 'naming';
      if (session.wasIn || roomFor(LOBBY).entries.some((e) => e.intro)) return;
      const card = el(
        'div',
        'intro',
        el('div', 'intro-title', 'Welcome to the chat'),
        el('p', null, 'People talk here in rooms; everyone starts in #lobby. Pick a name below and press Enter — or press Enter alone for a guest name.'),
        el('p', null, 'Once in: type to talk, /me to act, /msg NAME to whisper, /join #room for another room, /help for everything else.'),
      );
      const entry = line('notice intro-line', serverNow(), null, [card]);
      entry.intro = true;
      add(roomFor(LOBBY), entry);
    },

    name_prompt(m) {
      session.phase = 'naming';
      session.refusedReason = null;
      hidePassword();
      setStatus('connected — choose a name', 'naming');
      if (session.wasIn && session.name && !session.autoNamed && !m.again) {
        session.autoNamed = true;
        sendName(session.name);
        return;
      }
      if (session.typedName !== null) {
        const name = session.typedName;
        session.typedName = null;
        sendName(name);
        return;
      }
      setPrompt(
        m.again
          ? 'Choose another name and press Enter (Enter alone gives you a guest name).'
          : 'Choose a name and press Enter (Enter alone gives you a guest name).',
      );
      ui.input.placeholder = 'your name';
      ui.input.focus();
    },

    password_prompt(m) {
      session.phase = 'password';
      const name = str(m.name);
      if (session.password && !session.passwordTried && sameName(name, session.name)) {
        session.passwordTried = true;
        session.loginPassword = session.password;
        sendLine(session.password);
        session.phase = 'arriving';
        return;
      }
      setPrompt(`${name} is a registered name: type its password and press Enter.`);
      ui.input.hidden = true;
      ui.password.hidden = false;
      ui.password.value = '';
      ui.password.focus();
    },

    refusal(m) {
      if (session.phase === 'password' || session.loginPassword !== null) {
        // A wrong password: forget it, the person types it again.
        if (session.loginPassword === session.password) session.password = null;
        session.loginPassword = null;
      }
      notice(str(m.reason), 'refusal');
      if (session.phase !== 'in') setPrompt(str(m.reason));
    },

    welcome(m) {
      const comeback = session.wasIn;
      session.phase = 'in';
      session.me = person(m.you);
      session.name = session.me.name;
      if (session.loginPassword !== null) session.password = session.loginPassword;
      session.loginPassword = null;
      session.wasIn = true;
      session.lostNoticed = false;
      session.waitMs = FIRST_WAIT_MS;
      session.refusedReason = null;
      hidePassword();
      setPrompt('');
      for (const entry of roomFor(LOBBY).entries.filter((e) => e.intro)) remove(entry);
      setStatus(`connected as ${session.me.name}`, 'online');
      ui.retry.hidden = true;
      for (const room of rooms.values()) room.members = null;
      if (comeback) {
        notice(`Back, as ${session.me.name}.`, 'good');
        comeBack();
      } else {
        notice(`Welcome, ${session.me.name}! You are ${session.me.emoji} in ${LOBBY}. Type /help for commands.`, 'good');
      }
      sendUnsent();
      // A returning registered name is put back in its rooms by the
      // server: the room list says which.
      askQuietly('rooms', '/rooms');
      renderAll();
      ui.input.focus();
    },

    online(m) {
      roomFor(LOBBY).members = members(m.members);
      renderMembers();
    },

    recent(m) {
      const room = roomFor(m.room || LOBBY);
      // A room we had lines of (coming back): what is new in it was missed.
      const known = room.entries.some((e) => e.counts);
      const before = room.entries.filter((e) => e.counts).length;
      merge(room, m.lines, false);
      if (known && room !== currentRoom()) {
        room.unread += room.entries.filter((e) => e.counts).length - before;
        renderRooms();
      }
    },

    joined(m) {
      const room = roomFor(m.room);
      room.name = str(m.room);
      room.members = members(m.members);
      const others = Array.isArray(room.members) ? room.members.length - 1 : Number(room.members && room.members.count) || 0;
      notice(`You joined ${room.name}${others > 0 ? ` (${others} ${others === 1 ? 'other person' : 'other people'} here)` : ''}.`, 'info', room);
      renderRooms();
      renderMembers();
    },

    current(m) {
      switchTo(str(m.room));
    },

    left(m) {
      const key = keyOf(m.room);
      if (key === keyOf(LOBBY) && rooms.size === 1) return;
      rooms.delete(key);
      notice(`You left ${str(m.room)}.`, 'info');
      if (key === keyOf(current)) switchTo(rooms.has(keyOf(LOBBY)) ? LOBBY : [...rooms.values()][0].name);
      renderRooms();
    },

    members(m) {
      const room = rooms.get(keyOf(m.room));
      if (room) {
        room.members = members(m.members);
        if (m.topic !== undefined) room.topic = str(m.topic);
        renderMembers();
        renderTopic();
      }
      if (session.quiet.who > 0) {
        session.quiet.who -= 1;
        return;
      }
      const list = Array.isArray(m.members) ? m.members.map(person) : [];
      const line = el('span', 'list', `In ${str(m.room)} (${list.length}): `);
      list.forEach((p, i) => line.append(i ? ', ' : '', personNode(p)));
      notice(line, 'info');
    },

    rooms(m) {
      const list = Array.isArray(m.rooms) ? m.rooms : [];
      if (session.quiet.rooms > 0) {
        session.quiet.rooms -= 1;
        syncRooms(list);
        return;
      }
      const block = el('div', 'block');
      block.append(el('div', 'block-head', `Rooms with people in them (${list.length}):`));
      for (const r of list) {
        const name = str(r.room);
        const go = el('button', 'link', name);
        go.type = 'button';
        go.addEventListener('click', () => submit(`/join ${name}`));
        const marks = [r.current ? 'current' : '', r.yours && !r.current ? 'yours' : ''].filter(Boolean);
        const topic = r.topic ? el('span', 'topic', ` — ${str(r.topic)}`) : null;
        block.append(el('div', 'block-line', go, ` ${Number(r.users) || 0} ${Number(r.users) === 1 ? 'person' : 'people'}`, marks.length ? el('span', 'tag', marks.join(', ')) : null, topic));
      }
      noticeEntry(block, 'info');
    },

    history(m) {
      const room = roomFor(m.room);
      const lines = Array.isArray(m.lines) ? m.lines : [];
      const ask = session.historyAsks.length ? session.historyAsks.shift() : null;
      room.history.waiting = false;
      const added = merge(room, lines, true);
      if (!ask) {
        notice(`${lines.length} earlier ${lines.length === 1 ? 'line' : 'lines'} of ${str(m.room)} (${added} not shown before).`, 'info');
        return;
      }
      room.history.asked = Math.max(room.history.asked, ask.n);
      if (lines.length < ask.n || ask.n >= HISTORY_MAX) room.history.done = true;
      // Nothing new on this page, but more in the store: ask for the next.
      if (added === 0 && !room.history.done && room === currentRoom()) loadEarlier();
      renderEarlier();
    },

    search(m) {
      const lines = Array.isArray(m.lines) ? m.lines : [];
      const words = Array.isArray(m.words) ? m.words.map(str).join(' ') : str(m.words);
      const block = el('div', 'block search');
      const head = lines.length
        ? `Search in ${str(m.room)} for “${words}”: ${lines.length} ${lines.length === 1 ? 'line' : 'lines'}`
        : `Search in ${str(m.room)} for “${words}”: nothing found`;
      block.append(el('div', 'block-head', '🔍 ', head));
      for (const line of lines) {
        const entry = entryFor(line, { dated: true });
        if (entry) block.append(entry.node);
      }
      noticeEntry(block, 'info', roomFor(m.room));
    },

    catch_up(m) {
      const room = roomFor(m.room);
      const count = Number(m.count) || 0;
      merge(room, m.lines, false);
      if (count > 0) {
        notice(`${count} ${count === 1 ? 'message' : 'messages'} in ${str(m.room)} while you were away.`, 'info', room);
        if (keyOf(m.room) !== keyOf(current)) {
          room.unread += count;
          renderRooms();
        }
      }
    },

    unavailable(m) {
      stopHistory();
      notice(`History unavailable: ${str(m.reason)}`, 'trouble');
    },

    no_history_kept() {
      stopHistory();
      notice('This server keeps no history.', 'info');
    },

    private(m) {
      const from = person(m.from);
      const entry = line('private', serverNow(), null, [
        el('span', 'tag', 'private'),
        personNode(from),
        el('span', 'text', ...linked(str(m.text))),
      ]);
      entry.node.classList.add('mention');
      add(currentRoom(), entry);
      attention();
    },

    private_sent(m) {
      const entry = line('private', serverNow(), null, [
        el('span', 'tag', `private → ${str(m.to)}`),
        el('span', 'text', ...linked(str(m.text))),
      ]);
      add(currentRoom(), entry);
    },

    not_delivered(m) {
      notice(`Not delivered: ${str(m.reason)}`, 'refusal');
    },

    alone() {
      notice(`Nobody else is in ${current} to read that yet.`, 'info');
    },

    skipped(m) {
      const count = Number(m.count) || 0;
      notice(`The page fell behind and missed ${count} ${count === 1 ? 'line' : 'lines'}${m.room ? ` in ${str(m.room)}` : ''}.`, 'trouble', m.room ? roomFor(m.room) : undefined);
    },

    degraded() {
      notice('The link to the other servers is down: only people on this one hear you for now.', 'trouble');
    },

    whole_again() {
      notice('The link to the other servers is back.', 'good');
    },

    renamed(m) {
      const old = session.name;
      session.me = { ...(session.me || person({})), name: str(m.name) };
      session.name = str(m.name);
      // Others are told of the rename; this page is told only "renamed".
      for (const r of rooms.values()) renameMember(r, old, session.me);
      // A new name has no password of ours.
      session.password = null;
      notice(`You are now ${str(m.name)}.`, 'info');
      setStatus(`connected as ${session.name}`, 'online');
      renderMembers();
    },

    registered(m) {
      if (session.newPassword !== null && !m.already) session.password = session.newPassword;
      session.newPassword = null;
      notice(m.already ? `${str(m.name)} is already registered to you.` : `The name ${str(m.name)} is yours now.`, 'good');
    },

    password_changed() {
      if (session.newPassword !== null) session.password = session.newPassword;
      session.newPassword = null;
      notice('Password changed.', 'good');
    },

    unregistered(m) {
      session.password = null;
      notice(`The name ${str(m.name)} is free again.`, 'info');
    },

    colour(m) {
      notice(`Colour ${m.on ? 'on' : 'off'} (the page always shows colours).`, 'info');
    },

    usage(m) {
      notice(`Usage: ${str(m.usage)}`, 'refusal');
    },

    unknown_command(m) {
      notice(`Unknown command ${str(m.command)}; /help lists them.`, 'refusal');
    },

    help(m) {
      const block = el('div', 'block help');
      block.append(el('div', 'block-head', 'Commands'));
      const grid = el('div', 'help-grid');
      for (const text of Array.isArray(m.lines) ? m.lines : []) {
        // The server aligns its help in columns with spaces: a command, then what it does.
        const parts = str(text).match(/^\s*(\/\S*(?:\s(?:[A-Z][A-Z_]*|\[[^\]]*\]|\S*\|\S*|#\S+))*)\s+(.*)$/);
        if (parts) grid.append(el('code', null, parts[1]), el('span', null, parts[2]));
        else grid.append(el('span', 'help-wide', str(text).trim()));
      }
      block.append(grid);
      noticeEntry(block, 'info');
    },

    too_long(m) {
      notice(`That line was too long (${Number(m.bytes) || '?'} bytes, the limit is ${Number(m.limit) || '?'}); it was not sent.`, 'refusal');
      const last = session.lastEcho;
      if (last) last.node.classList.add('failed');
    },

    goodbye(m) {
      const reason = str(m.reason);
      const detail = m.detail ? `: ${str(m.detail)}` : '';
      const final = {
        quit: 'you left the chat',
        kicked: `you were kicked${detail}`,
        replaced: 'your name was taken over by a newer connection',
        name_timeout: 'no name was chosen in time',
        not_http: 'the server did not understand the page',
      };
      if (reason in final) {
        session.finalReason = final[reason];
        notice(`Goodbye: ${final[reason]}.`, reason === 'quit' ? 'info' : 'trouble');
      } else if (reason === 'shutdown') {
        notice('The server is going down; reconnecting when it is back.', 'trouble');
        session.lostNoticed = true;
      } else {
        notice(`The server closed the connection (${reason}${detail}).`, 'trouble');
      }
    },

    refused(m) {
      session.refusedReason = `turned away: ${str(m.reason)}`;
    },

    topic(m) {
      const room = roomFor(m.room);
      room.topic = str(m.text);
      renderTopic();
      if (Number.isFinite(m.at_ms)) {
        event(m);
        return;
      }
      notice(m.text ? `Topic of ${room.name}: ${str(m.text)} (set by ${str(m.by)})` : `${room.name} has no topic.`, 'info', room);
    },

    moderation(m) {
      // Put out of a room: the room goes with the next `left`, so its reason is told in #lobby.
      const outOf = m.room && (m.action === 'kick' || m.action === 'ban') && session.me && sameName(str(m.who), session.me.name);
      if (outOf) {
        notice(moderationText(m), 'trouble', roomFor(LOBBY));
        return;
      }
      if (Number.isFinite(m.at_ms) && m.room) {
        event(m);
        return;
      }
      notice(moderationText(m), 'info', m.room ? roomFor(m.room) : undefined);
    },

    bans(m) {
      const list = Array.isArray(m.bans) ? m.bans : [];
      const place = m.room ? `from ${str(m.room)}` : 'from the server';
      const block = el('div', 'block');
      block.append(el('div', 'block-head', list.length ? `${list.length} banned ${place}:` : `Nobody is banned ${place}.`));
      for (const b of list) {
        const reason = b.reason ? `: ${str(b.reason)}` : '';
        block.append(el('div', 'block-line', `${str(b.target)} by ${str(b.by)} ${untilText(b.until_ms)}${reason}`));
      }
      noticeEntry(block, 'info');
    },

    console(m) {
      const block = el('div', 'block');
      for (const text of str(m.text).split('\n')) block.append(el('div', 'block-line', text));
      noticeEntry(block, 'info');
    },

    muted(m) {
      notice(`You are muted ${m.room ? `in ${str(m.room)}` : 'everywhere'} ${untilText(m.until_ms)}; your line was not sent.`, 'refusal');
      const last = session.lastEcho;
      if (last) last.node.classList.add('failed');
    },

    // Events: what happened in a room.
    message: event,
    action: event,
    announcement: event,
    join: event,
    part: event,
    leave: event,
    rename: event,
    presence: event,
  };

  function handle(message) {
    const handler = Object.prototype.hasOwnProperty.call(handlers, message.type) ? handlers[message.type] : null;
    if (handler) handler(message);
  }

  /** A live event in one of our rooms. */
  function event(m) {
    heardAt(m.at_ms);
    const room = roomFor(m.room || LOBBY);
    follow(m, room);
    const entry = entryFor(m, {});
    if (!entry) return;
    const added = add(room, entry);
    if (!added || !entry.counts) return;
    if (room !== currentRoom()) {
      room.unread += 1;
      if (entry.mention) room.mentioned = true;
      renderRooms();
    }
    if (entry.mention || document.hidden) attention();
  }

  /** Who is in which room, kept up to date from the events. */
  function follow(m, room) {
    switch (m.type) {
      case 'join':
        addMember(room, m.who);
        break;
      case 'part':
        removeMember(room, m.who);
        break;
      case 'leave':
        for (const r of rooms.values()) removeMember(r, m.who);
        break;
      case 'rename':
        for (const r of rooms.values()) renameMember(r, str(m.old), m.who);
        break;
      case 'presence':
        for (const change of Array.isArray(m.changes) ? m.changes : []) follow(change, room);
        return;
      default:
        return;
    }
    renderMembers();
  }

  /** A room's members as the server lists them, with ourselves (the joiner is not listed). */
  function members(list) {
    if (Array.isArray(list)) {
      const people = list.map(person);
      const me = session.me;
      if (me && !people.some((p) => sameName(p.name, me.name))) people.push(me);
      return sortPeople(people);
    }
    if (list && Number.isFinite(list.count)) return { count: list.count };
    return null;
  }

  const sortPeople = (list) => list.sort((a, b) => a.name.localeCompare(b.name, undefined, { sensitivity: 'base' }));

  function addMember(room, who) {
    const p = person(who);
    if (Array.isArray(room.members)) {
      room.members = sortPeople(room.members.filter((m) => !sameName(m.name, p.name)).concat(p));
    } else if (room.members && Number.isFinite(room.members.count)) {
      room.members = { count: room.members.count + 1 };
    }
  }

  function removeMember(room, who) {
    const p = person(who);
    if (Array.isArray(room.members)) {
      room.members = room.members.filter((m) => !sameName(m.name, p.name));
    } else if (room.members && Number.isFinite(room.members.count)) {
      room.members = { count: Math.max(0, room.members.count - 1) };
    }
  }

  function renameMember(room, old, who) {
    if (!Array.isArray(room.members)) return;
    if (!room.members.some((m) => sameName(m.name, old))) return;
    room.members = sortPeople(room.members.filter((m) => !sameName(m.name, old)).concat(person(who)));
  }

  /** The server's list of rooms: ours are added (a returning name is put back in its rooms). */
  function syncRooms(list) {
    for (const r of list) {
      if (!r || !r.yours) continue;
      const room = roomFor(r.room);
      room.name = str(r.room);
      if (r.topic !== undefined) room.topic = str(r.topic);
    }
    const listed = new Set(list.filter((r) => r && r.yours).map((r) => keyOf(r.room)));
    for (const [key] of rooms) {
      if (!listed.has(key) && key !== keyOf(LOBBY) && listed.size > 0) rooms.delete(key);
    }
    const now = list.find((r) => r && r.current);
    if (now) switchTo(str(now.room));
    renderRooms();
  }

  // ---- Coming back -------------------------------------------------------

  /** Back in after a loss: our rooms again, the current one last, then what was typed meanwhile. */
  function comeBack() {
    const here = keyOf(current);
    const others = [...rooms.values()].filter((r) => ![keyOf(LOBBY), here].includes(keyOf(r.name)));
    for (const room of others) sendLine(`/join ${room.name}`);
    if (others.length > 0 || here !== keyOf(LOBBY)) sendLine(`/join ${current}`);
  }

  /** Sends, once, what was typed while the page could not. */
  function sendUnsent() {
    const unsent = session.unsent;
    session.unsent = [];
    for (const held of unsent) deliver(held.text, held.entry);
  }

  // ---- What the person types ---------------------------------------------

  const typed = [];
  let browsing = -1;

  /** The answer to the name prompt; until the server answers, typed lines wait. */
  function sendName(name) {
    sendLine(name);
    session.phase = 'arriving';
    setPrompt('');
  }

  function submit(text) {
    if (session.phase === 'naming' && open()) {
      sendName(text.trim());
      return;
    }
    if (session.phase === 'password') return;
    if (!session.wasIn && session.phase !== 'arriving') {
      // Before the first welcome, a line is the name to choose.
      session.typedName = text.trim();
      if (session.phase === 'ended') connect();
      return;
    }
    if (session.phase !== 'in') {
      hold(text);
      if (session.phase === 'ended') connect();
      return;
    }
    deliver(text, null);
  }

  /** Keeps a line typed while offline, shown dimmed until it is sent. */
  function hold(text) {
    if (session.unsent.length >= UNSENT_MAX) {
      notice(`Not kept: ${UNSENT_MAX} lines already wait to be sent.`, 'refusal');
      return;
    }
    const entry = isPlain(text) ? ownLine(text) : commandLine(text);
    entry.node.classList.add('pending');
    entry.node.append(el('span', 'tag', 'waiting to send'));
    add(currentRoom(), entry);
    session.unsent.push({ text, entry });
  }

  /** Sends a line now, showing our own message since the server echoes none. */
  function deliver(text, pending) {
    if (pending) remove(pending);
    note(text);
    if (!sendLine(text)) {
      hold(text);
      return;
    }
    if (isPlain(text) || isMe(text)) {
      const entry = ownLine(text);
      session.lastEcho = entry;
      add(currentRoom(), entry);
    }
  }

  const narrow = () => window.matchMedia('(max-width: 760px)').matches;
  const isPlain = (text) => !text.startsWith('/') || text.startsWith('//');
  const isMe = (text) => /^\/me(\s|$)/i.test(text);

  /** What a command means for the page itself: a password to keep once the server confirms it. */
  function note(text) {
    if (isPlain(text)) return;
    const [command, ...args] = text.slice(1).trim().split(/\s+/);
    switch ((command || '').toLowerCase()) {
      case 'register':
        session.newPassword = args[0] || null;
        break;
      case 'password':
        session.newPassword = args[1] || null;
        break;
      default:
        break;
    }
  }

  function ownLine(text) {
    const me = session.me || { name: session.name || 'you', emoji: '', css: '' };
    const action = isMe(text);
    const body = action ? text.replace(/^\/me\s?/i, '') : isPlain(text) && text.startsWith('//') ? text.slice(1) : text;
    const entry = entryFor({ type: action ? 'action' : 'message', from: me, text: body, at_ms: serverNow() }, { own: true });
    entry.key = null;
    entry.echo = true;
    return entry;
  }

  function commandLine(text) {
    return line('notice command', serverNow(), null, [el('span', 'text', text)]);
  }

  // ---- Log entries -------------------------------------------------------

  function person(p) {
    const o = p && typeof p === 'object' ? p : {};
    return { name: str(o.name), emoji: str(o.emoji), css: str(o.css), colour: str(o.colour) };
  }

  function personNode(p) {
    const node = el('span', 'who', p.emoji ? el('span', 'emoji', p.emoji) : null, el('span', 'name', p.name));
    const rgb = /^#[0-9a-fA-F]{6}$/.test(p.css) ? hexRgb(p.css) : hashColour(p.name);
    // The speaker's colour, darkened on a light page and lightened on a
    // dark one as far as it takes to be read (WCAG's 4.5:1).
    node.style.setProperty('--c-light', rgbHex(readable(rgb, LIGHT_BG, [0, 0, 0])));
    node.style.setProperty('--c-dark', rgbHex(readable(rgb, DARK_BG, [255, 255, 255])));
    return node;
  }

  // The log's backgrounds in app.css, light and dark.
  const LIGHT_BG = [246, 247, 249];
  const DARK_BG = [17, 20, 24];

  const hexRgb = (hex) => [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));
  const rgbHex = (rgb) => `#${rgb.map((c) => Math.round(c).toString(16).padStart(2, '0')).join('')}`;

  function luminance(rgb) {
    const [r, g, b] = rgb.map((c) => {
      const v = c / 255;
      return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
    });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  }

  function contrast(a, b) {
    const [hi, lo] = [luminance(a), luminance(b)].sort((x, y) => y - x);
    return (hi + 0.05) / (lo + 0.05);
  }

  /** `rgb` mixed toward `toward` until it reads on `background`. */
  function readable(rgb, background, toward) {
    let colour = rgb;
    for (let step = 1; step <= 20 && contrast(colour, background) < 4.5; step++) {
      const t = step / 20;
      colour = rgb.map((c, i) => c + (toward[i] - c) * t);
    }
    return colour;
  }

  /** A colour for a speaker the server gave none. */
  function hashColour(name) {
    let h = 0;
    for (const ch of name) h = (h * 31 + ch.codePointAt(0)) >>> 0;
    return hexRgb(`#${(h & 0xffffff).toString(16).padStart(6, '0')}`);
  }

  function timeNode(ms, dated) {
    const date = new Date(ms);
    const text = dated && dayOf(ms) !== dayOf(Date.now())
      ? `${date.toLocaleDateString(undefined, { day: 'numeric', month: 'short' })} ${hhmm(date)}`
      : hhmm(date);
    const node = el('time', 'when', text);
    node.dateTime = date.toISOString();
    node.title = date.toLocaleString();
    return node;
  }

  /** One line of the log: its time, its dedupe key and its element. */
  function line(kind, t, key, parts, dated) {
    const node = el('div', `line ${kind}`, timeNode(t, dated), ...parts);
    // said: what a stored copy is recognised by; batch: the last batch of
    // copies that matched it; aliases: the keys of those copies.
    return { t, key, node, counts: false, mention: false, echo: false, said: null, batch: 0, aliases: [] };
  }

  function mentions(text) {
    const me = session.me && session.me.name;
    if (!me) return false;
    const escaped = me.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    return new RegExp(`(^|[^\\p{L}\\p{N}_-])@?${escaped}($|[^\\p{L}\\p{N}_-])`, 'iu').test(text);
  }

  /** Text with its web links made clickable (http and https only). */
  function linked(text) {
    const parts = [];
    const pattern = /\bhttps?:\/\/[^\s<>"]+/gi;
    let last = 0;
    for (const match of text.matchAll(pattern)) {
      let url = match[0].replace(/[.,;:!?)\]'}]+$/, '');
      if (!url) continue;
      let parsed;
      try {
        parsed = new URL(url);
      } catch (error) {
        continue;
      }
      if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') continue;
      parts.push(text.slice(last, match.index));
      const a = el('a', null, url);
      a.href = parsed.href;
      a.target = '_blank';
      a.rel = 'noopener noreferrer nofollow';
      parts.push(a);
      last = match.index + url.length;
    }
    parts.push(text.slice(last));
    return parts.filter((p) => p !== '');
  }

  function presenceText(m) {
    const name = person(m.who).name;
    switch (m.type) {
      case 'join':
        return m.arrival ? `→ ${name} arrived` : `→ ${name} joined ${str(m.to)}`;
      case 'part':
        return `← ${name} left ${str(m.from)}`;
      case 'leave':
        return `← ${name} ${str(m.how) || 'left'}`;
      case 'rename':
        return `${str(m.old)} is now ${name}`;
      default:
        return '';
    }
  }

  /** An event or a stored line as a log entry (null for what the page does not show). */
  function entryFor(m, { dated = false, own = false } = {}) {
    const t = Number.isFinite(m.at_ms) ? m.at_ms : serverNow();
    const at = Number.isFinite(m.at_ms) ? m.at_ms : null;
    switch (m.type) {
      case 'message':
      case 'action': {
        const from = person(m.from);
        const text = str(m.text);
        const key = at === null ? null : `${at}|${from.name}|${text}`;
        const parts = m.type === 'action'
          ? [el('span', 'star', '*'), personNode(from), el('span', 'text', ...linked(text))]
          : [personNode(from), el('span', 'text', ...linked(text))];
        const entry = line(m.type, t, key, parts, dated);
        entry.counts = true;
        entry.said = { kind: m.type, name: from.name, text };
        if (own || (session.me && sameName(from.name, session.me.name))) entry.node.classList.add('own');
        else if (mentions(text)) {
          entry.mention = true;
          entry.node.classList.add('mention');
        }
        return entry;
      }
      case 'announcement': {
        const text = str(m.text);
        const entry = line('announcement', t, at === null ? null : `${at}|*|${text}`, [el('span', 'badge', '📢'), el('span', 'text', ...linked(text))], dated);
        entry.counts = true;
        entry.said = { kind: 'announcement', name: '', text };
        return entry;
      }
      case 'join':
      case 'part':
      case 'leave':
      case 'rename': {
        const text = presenceText(m);
        return line('presence', t, at === null ? null : `${at}|${m.type}|${text}`, [el('span', 'text', text)], dated);
      }
      case 'presence': {
        const changes = Array.isArray(m.changes) ? m.changes : [];
        const came = changes.filter((c) => c.type === 'join').map((c) => person(c.who).name);
        const went = changes.filter((c) => c.type === 'part' || c.type === 'leave').map((c) => person(c.who).name);
        const renamed = changes.filter((c) => c.type === 'rename').map(presenceText);
        const text = [came.length ? `→ ${came.join(', ')} joined` : '', went.length ? `← ${went.join(', ')} left` : '', ...renamed].filter(Boolean).join(' · ');
        return line('presence', t, at === null ? null : `${at}|presence|${text}`, [el('span', 'text', text)], dated);
      }
      case 'topic':
      case 'moderation': {
        const text = m.type === 'topic' ? topicChange(m) : moderationText(m);
        return line('notice info', t, at === null ? null : `${at}|${m.type}|${text}`, [el('span', 'text', text)], dated);
      }
      default:
        return null;
    }
  }

  const sameSaid = (a, b) => a.said !== null && b.said !== null && a.said.kind === b.said.kind && sameName(a.said.name, b.said.name) && a.said.text === b.said.text;

  /**
   * The line already shown that a stored copy stands for: the same kind,
   * speaker and text, close in time, not pending, and not matched by
   * another copy of the same batch (two equal lines stay two); the nearest.
   */
  function shownCopyOf(room, entry, batch) {
    let best = null;
    for (let i = room.entries.length - 1; i >= 0; i--) {
      const e = room.entries[i];
      if (e.batch === batch || !sameSaid(e, entry) || e.node.classList.contains('pending')) continue;
      const apart = Math.abs(e.t - entry.t);
      if (apart > (e.echo ? ECHO_SLACK_MS : COPY_SLACK_MS)) continue;
      if (best === null || apart < Math.abs(best.t - entry.t)) best = e;
    }
    return best;
  }

  /**
   * Adds an entry to a room's log in time order, unless it is shown
   * already; `batch` numbers a batch of stored copies (see merge).
   * Returns whether it was added.
   */
  function add(room, entry, { render = true, batch = 0 } = {}) {
    const known = entry.key !== null ? room.keys.get(entry.key) : undefined;
    if (known) {
      if (batch) known.batch = batch;
      return false;
    }
    const shown = batch ? shownCopyOf(room, entry, batch) : null;
    if (shown) {
      shown.batch = batch;
      shown.echo = false;
      if (entry.key !== null) {
        room.keys.set(entry.key, shown);
        shown.aliases.push(entry.key);
      }
      return false;
    }
    entry.batch = batch;
    if (entry.key !== null) room.keys.set(entry.key, entry);
    const list = room.entries;
    let at = list.length;
    while (at > 0 && list[at - 1].t > entry.t) at -= 1;
    list.splice(at, 0, entry);
    while (list.length > LOG_MAX) {
      forget(room, list.shift());
      room.history.done = true;
    }
    if (render && room === currentRoom()) {
      if (at === list.length - 1) appendToLog(entry, list[at - 1]);
      else renderLog();
    }
    return true;
  }

  function forget(room, entry) {
    for (const key of [entry.key, ...entry.aliases]) {
      if (key !== null && room.keys.get(key) === entry) room.keys.delete(key);
    }
  }

  function remove(entry) {
    for (const room of rooms.values()) {
      const i = room.entries.indexOf(entry);
      if (i >= 0) {
        room.entries.splice(i, 1);
        forget(room, entry);
      }
    }
    entry.node.remove();
  }

  let batches = 0;

  /** Lines from the store (recent, history, catch-up), merged without repeats; returns how many were new. */
  function merge(room, lines, dated) {
    batches += 1;
    let added = 0;
    for (const m of Array.isArray(lines) ? lines : []) {
      const entry = entryFor(m, { dated });
      if (entry && add(room, entry, { render: false, batch: batches })) added += 1;
    }
    if (added && room === currentRoom()) renderLog();
    return added;
  }

  /** When a ban or mute ends, as the server words it: `until lifted`, or a local date and time. */
  function untilText(untilMs) {
    if (!Number.isFinite(untilMs)) return 'until lifted';
    return `until ${new Date(untilMs).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' })}`;
  }

  function topicChange(m) {
    return m.text ? `${str(m.by)} set the topic of ${str(m.room)}: ${str(m.text)}` : `${str(m.by)} cleared the topic of ${str(m.room)}`;
  }

  /** A moderation action in words, as netcat users read it. */
  function moderationText(m) {
    const who = str(m.who);
    const by = str(m.by);
    const from = m.room ? `from ${str(m.room)}` : 'from the server';
    const where = m.room ? `in ${str(m.room)}` : 'everywhere';
    const reason = m.reason ? `: ${str(m.reason)}` : '';
    switch (m.action) {
      case 'kick': return `${who} was kicked ${from} by ${by}${reason}`;
      case 'ban': return `${who} is banned ${from} by ${by} ${untilText(m.until_ms)}${reason}`;
      case 'unban': return `${who} is no longer banned ${from} (${by})`;
      case 'mute': return `${who} is muted ${where} by ${by} ${untilText(m.until_ms)}`;
      case 'unmute': return `${who} may speak again ${where} (${by})`;
      case 'op': return `${who} is now an operator of ${str(m.room)} (${by})`;
      case 'deop': return `${who} is no longer an operator of ${str(m.room)} (${by})`;
      default: return `${who}: ${str(m.action)} by ${by}`;
    }
  }

  function notice(content, kind, room) {
    const body = typeof content === 'string' ? el('span', 'text', content) : content;
    noticeEntry(body, kind, room);
  }

  function noticeEntry(body, kind, room) {
    const target = room || currentRoom();
    const last = target.entries[target.entries.length - 1];
    const t = Math.max(serverNow(), last ? last.t : 0);
    add(target, line(`notice ${kind}`, t, null, [body]));
  }

  // ---- Drawing -----------------------------------------------------------

  function atBottom() {
    return ui.log.scrollHeight - ui.log.scrollTop - ui.log.clientHeight < FOLLOW_PX;
  }

  function dayDivider(ms) {
    const d = new Date(ms);
    const today = dayOf(Date.now());
    const yesterday = dayOf(Date.now() - 86400000);
    const label = dayOf(ms) === today ? 'Today' : dayOf(ms) === yesterday ? 'Yesterday' : d.toLocaleDateString(undefined, { weekday: 'short', day: 'numeric', month: 'short', year: 'numeric' });
    return el('div', 'day', el('span', null, label));
  }

  function appendToLog(entry, before) {
    const follow = atBottom();
    if (!before || dayOf(before.t) !== dayOf(entry.t)) ui.log.append(dayDivider(entry.t));
    ui.log.append(entry.node);
    if (follow || entry.echo) ui.log.scrollTop = ui.log.scrollHeight;
  }

  /** Draws the current room's log again, keeping what the reader looks at in place. */
  function renderLog() {
    const follow = atBottom();
    const fromBottom = ui.log.scrollHeight - ui.log.scrollTop;
    const nodes = [];
    let day = null;
    for (const entry of currentRoom().entries) {
      const d = dayOf(entry.t);
      if (d !== day) {
        nodes.push(dayDivider(entry.t));
        day = d;
      }
      nodes.push(entry.node);
    }
    ui.log.replaceChildren(...nodes);
    ui.log.scrollTop = follow ? ui.log.scrollHeight : ui.log.scrollHeight - fromBottom;
    renderEarlier();
  }

  function renderRooms() {
    const items = [];
    const sorted = [...rooms.values()].sort((a, b) => (keyOf(a.name) === keyOf(LOBBY) ? -1 : keyOf(b.name) === keyOf(LOBBY) ? 1 : a.name.localeCompare(b.name)));
    let unread = 0;
    for (const room of sorted) {
      const here = keyOf(room.name) === keyOf(current);
      const go = el('button', 'room', el('span', 'room-name', room.name));
      go.type = 'button';
      if (room.unread > 0 && !here) {
        go.append(el('span', room.mentioned ? 'unread mentioned' : 'unread', String(room.unread)));
        unread += room.unread;
      }
      go.addEventListener('click', () => {
        document.body.classList.remove('show-members');
        if (keyOf(room.name) === keyOf(current)) return;
        // Joining a room we are in makes it current; offline, coming back does.
        if (session.phase === 'in') sendLine(`/join ${room.name}`);
        switchTo(room.name);
        // On a desktop, straight back to typing (a phone would pop its keyboard up).
        if (!narrow()) ui.input.focus();
      });
      const li = el('li', here ? 'here' : null, go);
      li.dataset.room = room.name;
      if (here) go.setAttribute('aria-current', 'true');
      if (keyOf(room.name) !== keyOf(LOBBY)) {
        const leave = el('button', 'leave', '×');
        leave.type = 'button';
        leave.title = `Leave ${room.name}`;
        leave.setAttribute('aria-label', `Leave ${room.name}`);
        leave.addEventListener('click', () => submit(`/part ${room.name}`));
        li.append(leave);
      }
      items.push(li);
    }
    ui.rooms.replaceChildren(...items);
    const hidden = document.hidden ? session.hiddenCount : 0;
    const total = unread + hidden;
    document.title = total > 0 ? `(${total}) ${current} — chat` : `${current} — chat`;
  }

  function renderMembers() {
    const room = currentRoom();
    const list = room.members;
    const items = [];
    if (Array.isArray(list)) {
      for (const p of list) {
        const li = el('li', null, personNode(p));
        if (session.me && sameName(p.name, session.me.name)) {
          li.classList.add('me');
          li.append(el('span', 'you', 'you'));
        } else {
          li.title = `Send ${p.name} a private message`;
          li.addEventListener('click', () => {
            ui.input.value = `/msg ${p.name} `;
            ui.input.focus();
            document.body.classList.remove('show-members');
          });
        }
        items.push(li);
      }
      ui.membersCount.textContent = String(list.length);
      ui.roomCount.textContent = `${list.length} ${list.length === 1 ? 'person' : 'people'}`;
    } else if (list && Number.isFinite(list.count)) {
      items.push(el('li', 'many', `${list.count} people`));
      ui.membersCount.textContent = String(list.count);
      ui.roomCount.textContent = `${list.count} people`;
    } else {
      ui.membersCount.textContent = '';
      ui.roomCount.textContent = '';
    }
    ui.members.replaceChildren(...items);
  }

  function renderEarlier() {
    const h = currentRoom().history;
    const show = session.phase === 'in' && !h.done && ui.log.scrollTop < FOLLOW_PX;
    ui.earlier.hidden = !show;
    ui.earlier.textContent = h.waiting ? 'loading earlier messages…' : '↑ earlier messages';
    ui.earlier.disabled = h.waiting;
  }

  /** The current room's topic, under its title (hidden when it has none). */
  function renderTopic() {
    const topic = currentRoom().topic;
    ui.roomTopic.textContent = topic;
    ui.roomTopic.title = topic;
    ui.roomTopic.hidden = !topic;
  }

  function renderAll() {
    ui.roomTitle.textContent = current;
    renderTopic();
    ui.input.placeholder = session.phase === 'in' ? `Message ${current}` : ui.input.placeholder;
    renderRooms();
    renderMembers();
    renderLog();
  }

  function switchTo(name) {
    const room = roomFor(name);
    current = room.name;
    room.unread = 0;
    room.mentioned = false;
    renderAll();
    ui.log.scrollTop = ui.log.scrollHeight;
    if (room.members === null && session.phase === 'in') askQuietly('who', '/who');
  }

  function askQuietly(kind, line) {
    if (sendLine(line)) session.quiet[kind] += 1;
  }

  function hidePassword() {
    ui.password.hidden = true;
    ui.password.value = '';
    ui.input.hidden = false;
  }

  function attention() {
    if (!document.hidden) return;
    session.hiddenCount += 1;
    renderRooms();
  }

  // ---- Scroll-back -------------------------------------------------------

  function loadEarlier() {
    const room = currentRoom();
    const h = room.history;
    if (session.phase !== 'in' || h.waiting || h.done) return;
    const n = Math.min(h.asked + HISTORY_STEP, HISTORY_MAX);
    if (!sendLine(`/history ${n}`)) return;
    h.waiting = true;
    session.historyAsks.push({ room: room.name, n });
    renderEarlier();
  }

  function stopHistory() {
    const ask = session.historyAsks.shift();
    const room = ask ? roomFor(ask.room) : currentRoom();
    room.history.waiting = false;
    room.history.done = true;
    renderEarlier();
  }

  // ---- Wiring ------------------------------------------------------------

  ui.input.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.isComposing && !e.shiftKey) {
      e.preventDefault();
      const text = ui.input.value;
      if (text === '' && session.phase === 'in') return;
      ui.input.value = '';
      if (text !== '' && session.phase !== 'naming') typed.push(text);
      browsing = -1;
      submit(text);
    } else if (e.key === 'ArrowUp' && typed.length && (ui.input.value === '' || browsing >= 0)) {
      e.preventDefault();
      browsing = browsing < 0 ? typed.length - 1 : Math.max(0, browsing - 1);
      ui.input.value = typed[browsing];
    } else if (e.key === 'ArrowDown' && browsing >= 0) {
      e.preventDefault();
      browsing += 1;
      ui.input.value = browsing < typed.length ? typed[browsing] : '';
      if (browsing >= typed.length) browsing = -1;
    }
  });

  ui.password.addEventListener('keydown', (e) => {
    if (e.key !== 'Enter' || e.isComposing) return;
    e.preventDefault();
    sendPassword();
  });

  function sendPassword() {
    const password = ui.password.value;
    ui.password.value = '';
    if (session.phase !== 'password' || !open()) return;
    session.loginPassword = password;
    sendLine(password);
    session.phase = 'arriving';
    setPrompt('Checking the password…');
  }

  ui.send.addEventListener('click', () => {
    if (!ui.password.hidden) {
      sendPassword();
      return;
    }
    ui.input.dispatchEvent(new KeyboardEvent('keydown', { key: 'Enter', bubbles: true }));
    ui.input.focus();
  });

  function joinTyped() {
    const name = ui.joinRoom.value.trim();
    if (!name) {
      // On a phone the field hides behind the "+" until asked for.
      document.body.classList.toggle('joining');
      ui.joinRoom.focus();
      return;
    }
    ui.joinRoom.value = '';
    document.body.classList.remove('joining');
    submit(`/join ${name}`);
  }
  ui.joinRoom.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.isComposing) {
      e.preventDefault();
      joinTyped();
    }
  });
  ui.joinButton.addEventListener('click', joinTyped);

  ui.retry.addEventListener('click', () => {
    if (session.phase === 'offline' || session.phase === 'ended') connect();
  });

  ui.membersToggle.addEventListener('click', () => {
    document.body.classList.add('drawer');
    const shown = document.body.classList.toggle('show-members');
    ui.membersToggle.setAttribute('aria-expanded', String(shown));
  });

  let following = true;
  ui.log.addEventListener('scroll', () => {
    following = atBottom();
    if (ui.log.scrollTop < FOLLOW_PX) loadEarlier();
    renderEarlier();
  });
  // A phone's keyboard, a turned screen or a resized window changes the
  // log's height: a reader at the newest line stays there.
  new ResizeObserver(() => {
    if (following) ui.log.scrollTop = ui.log.scrollHeight;
  }).observe(ui.log);
  ui.log.addEventListener('wheel', (e) => {
    if (e.deltaY < 0 && ui.log.scrollTop === 0) loadEarlier();
  });
  ui.earlier.addEventListener('click', loadEarlier);

  document.addEventListener('visibilitychange', () => {
    if (!document.hidden) {
      session.hiddenCount = 0;
      renderRooms();
    }
  });

  roomFor(LOBBY);
  renderAll();
  connect();
})();
