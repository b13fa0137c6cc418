// openai_client.test.mjs — `inferneo serve` driven by the official `openai` npm client: models,
// chat completions (plain and streamed), completions, embeddings, and the client's typed errors
// (NotFoundError, AuthenticationError, BadRequestError). Greedy text must be the same whether
// streamed or not, and equal to `inferneo generate --temp 0` on the same (formatted) prompt.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import OpenAI from 'openai';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = process.env.INFERNEO_ROOT || path.resolve(HERE, '..', '..');
const BIN = process.env.INFERNEO_BIN || path.join(ROOT, 'build', 'inferneo');
const MODEL = path.join(ROOT, 'models', 'stories260K.gguf');
const KEY = 'sk-node-test-key';
const NAME = 'stories';

function freePort() {
    return new Promise((resolve, reject) => {
        const s = net.createServer();
        s.on('error', reject);
        s.listen(0, '127.0.0.1', () => {
            const { port } = s.address();
            s.close(() => resolve(port));
        });
    });
}

async function startServer() {
    const port = await freePort();
    const proc = spawn(BIN, ['serve', '-m', MODEL, '--port', String(port), '-t', '1',
                             '--served-model-name', NAME, '--api-key', KEY],
                       { stdio: ['ignore', 'ignore', 'pipe'] });
    let log = '';
    await new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no "listening on" line:\n' + log)), 30000);
        proc.stderr.on('data', (d) => {
            log += d;
            if (log.includes(`listening on http://127.0.0.1:${port}`)) {
                clearTimeout(timer);
                resolve();
            }
        });
        proc.on('exit', (code) => reject(new Error(`server exited (${code}):\n${log}`)));
    });
    return { proc, port, log: () => log };
}

function generate(prompt, n) {
    const p = spawnSync(BIN, ['generate', '-m', MODEL, '-p', prompt, '-n', String(n), '--temp', '0',
                              '-t', '1'], { encoding: 'utf8', timeout: 120000 });
    assert.equal(p.status, 0, p.stderr);
    return p.stdout;
}

const chatml = (msgs) =>
    msgs.map((m) => `<|im_start|>${m.role}\n${m.content}<|im_end|>\n`).join('') +
    '<|im_start|>assistant\n';

describe('the official openai client against inferneo serve', () => {
    let srv, client;
    before(async () => {
        srv = await startServer();
        client = new OpenAI({ baseURL: `http://127.0.0.1:${srv.port}/v1`, apiKey: KEY,
                              maxRetries: 0, timeout: 60000 });
    });
    after(async () => {
        if (!srv) return;
        const exited = new Promise((resolve) => srv.proc.on('exit', resolve));
        srv.proc.kill('SIGTERM');
        assert.equal(await exited, 0, 'the server did not exit 0 on SIGTERM');
        assert.ok(!srv.log().includes(KEY), 'the API key appeared in the log');
    });

    test('models.list', async () => {
        const ids = [];
        for await (const m of client.models.list()) {
            ids.push(m.id);
            assert.equal(m.object, 'model');
            assert.equal(typeof m.created, 'number');
        }
        assert.deepEqual(ids, [NAME]);
    });

    test('chat.completions.create, plain and streamed', async () => {
        const messages = [{ role: 'user', content: 'Tell me a story about a dog.' }];
        const r = await client.chat.completions.create({ model: NAME, messages, max_tokens: 24,
                                                         temperature: 0 });
        assert.match(r.id, /^chatcmpl-/);
        assert.equal(r.object, 'chat.completion');
        assert.equal(r.choices[0].message.role, 'assistant');
        assert.equal(r.choices[0].message.content, generate(chatml(messages), 24));
        assert.ok(['stop', 'length'].includes(r.choices[0].finish_reason));
        assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens);

        const stream = await client.chat.completions.create({
            model: NAME, messages, max_tokens: 24, temperature: 0, stream: true,
            stream_options: { include_usage: true } });
        let text = '', role = null, finish = null, usage = null;
        for await (const chunk of stream) {
            assert.equal(chunk.object, 'chat.completion.chunk');
            if (chunk.usage) usage = chunk.usage;
            if (!chunk.choices.length) continue;
            const c = chunk.choices[0];
            if (c.delta.role) role = c.delta.role;
            text += c.delta.content ?? '';
            if (c.finish_reason) finish = c.finish_reason;
        }
        assert.equal(role, 'assistant');
        assert.equal(text, r.choices[0].message.content);
        assert.equal(finish, r.choices[0].finish_reason);
        assert.equal(usage.completion_tokens, r.usage.completion_tokens);
    });

    test('completions.create, plain and streamed', async () => {
        const prompt = 'Once upon a time';
        const r = await client.completions.create({ model: NAME, prompt, max_tokens: 20,
                                                    temperature: 0 });
        assert.equal(r.object, 'text_completion');
        assert.equal(r.choices[0].text, generate(prompt, 20));
        let text = '';
        const stream = await client.completions.create({ model: NAME, prompt, max_tokens: 20,
                                                         temperature: 0, stream: true });
        for await (const chunk of stream) text += chunk.choices[0]?.text ?? '';
        assert.equal(text, r.choices[0].text);
    });

    test('embeddings.create (the client asks for base64 and decodes it)', async () => {
        const r = await client.embeddings.create({ model: NAME, input: ['a cat', 'a dog'] });
        assert.equal(r.data.length, 2);
        for (const d of r.data) {
            assert.equal(d.embedding.length, 64); // stories260K: n_embd 64
            const norm = Math.sqrt(d.embedding.reduce((s, x) => s + x * x, 0));
            assert.ok(Math.abs(norm - 1) < 1e-4, `norm ${norm}`);
        }
        const f = await client.embeddings.create({ model: NAME, input: 'a cat',
                                                   encoding_format: 'float' });
        f.data[0].embedding.forEach((x, i) => assert.ok(Math.abs(x - r.data[0].embedding[i]) < 1e-6));
        assert.ok(r.usage.prompt_tokens > 0);
    });

    test('errors are the client\'s typed errors', async () => {
        await assert.rejects(
            client.chat.completions.create({ model: 'no-such-model',
                                             messages: [{ role: 'user', content: 'hi' }] }),
            (e) => e instanceof OpenAI.NotFoundError && e.status === 404 &&
                   e.code === 'model_not_found');
        const bad = new OpenAI({ baseURL: client.baseURL, apiKey: 'wrong', maxRetries: 0 });
        await assert.rejects(bad.models.list(),
                             (e) => e instanceof OpenAI.AuthenticationError && e.status === 401 &&
                                    e.code === 'invalid_api_key');
        await assert.rejects(
            client.completions.create({ model: NAME, prompt: 'x', temperature: 7 }),
            (e) => e instanceof OpenAI.BadRequestError && e.param === 'temperature');
        await assert.rejects(
            client.chat.completions.create({ model: NAME, messages: [{ role: 'user', content: 'x' }],
                                             response_format: { type: 'json_object' } }),
            (e) => e instanceof OpenAI.BadRequestError && e.code === 'unsupported_parameter');
        await assert.rejects(
            client.completions.create({ model: NAME, prompt: 'Once upon a time '.repeat(700),
                                        max_tokens: 4 }),
            (e) => e instanceof OpenAI.BadRequestError && e.code === 'context_length_exceeded');
    });
});
