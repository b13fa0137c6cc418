/*
 * test_chat_template.c — the Jinja-subset chat template engine against expected renderings made
 * with Python's jinja2 in Hugging Face's settings (trim_blocks, lstrip_blocks, loopcontrols):
 * Llama 2, Llama 3, Llama 3.1, ChatML, Qwen2, Qwen2.5, Mistral (v0.1, v0.3), Phi-3, Phi-3.5,
 * Gemma, Zephyr, DeepSeek, Vicuna and feature templates (whitespace control, expressions,
 * filters, methods, loops, macros). Also: the ChatML fallback, error reporting, resource limits,
 * random garbage templates, and inf_chat_format on the fixture models' embedded templates.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "base/base.h"
#include "chat/chat.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Generated with jinja2 3.1 (trim_blocks, lstrip_blocks, loopcontrols, HF tojson). */
static const char *const tmpl_src[] = {
    /* llama2 */
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set s"
    "ystem_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{"
    "% set system_message = false %}{% endif %}{% for message in loop_messages %}{% if (mes"
    "sage['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation r"
    "oles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if loop.index0"
    " == 0 and system_message != false %}{% set content = '<<SYS>>\\n' + system_message + '"
    "\\n<</SYS>>\\n\\n' + message['content'] %}{% else %}{% set content = message['content'"
    "] %}{% endif %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.st"
    "rip() + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip("
    ") + ' ' + eos_token }}{% endif %}{% endfor %}",
    /* llama3 */
    "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '"
    "<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] |"
    " trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %"
    "}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_"
    "id|>assistant<|end_header_id|>\n\n' }}{% endif %}",
    /* chatml */
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['con"
    "tent'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_star"
    "t|>assistant\\n' }}{% endif %}",
    /* qwen2 */
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{"
    " '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}{{'<|im_s"
    "tart|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor"
    " %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}",
    /* mistral */
    "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop"
    ".index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assista"
    "nt/user/assistant/...') }}{% endif %}{% if message['role'] == 'user' %}{{ '[INST] ' + "
    "message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ message["
    "'content'] + eos_token}}{% else %}{{ raise_exception('Only user and assistant roles ar"
    "e supported!') }}{% endif %}{% endfor %}",
    /* phi3 */
    "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') %}{{'<|u"
    "ser|>' + '\n' + message['content'] + '<|end|>' + '\n' + '<|assistant|>' + '\n'}}{% eli"
    "f (message['role'] == 'assistant') %}{{message['content'] + '<|end|>' + '\n'}}{% endif"
    " %}{% endfor %}",
    /* phi35 */
    "{% for message in messages %}{% if message['role'] == 'system' and message['content'] "
    "%}{{'<|system|>\n' + message['content'] + '<|end|>\n'}}{% elif message['role'] == 'use"
    "r' %}{{'<|user|>\n' + message['content'] + '<|end|>\n'}}{% elif message['role'] == 'as"
    "sistant' %}{{'<|assistant|>\n' + message['content'] + '<|end|>\n'}}{% endif %}{% endfo"
    "r %}{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}{% e"
    "ndif %}",
    /* gemma */
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role"
    " not supported') }}{% endif %}{% for message in messages %}{% if (message['role'] == '"
    "user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alterna"
    "te user/assistant/user/assistant/...') }}{% endif %}{% if (message['role'] == 'assista"
    "nt') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}{% endif %}{{"
    " '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% "
    "endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}",
    /* zephyr */
    "{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\n' + m"
    "essage['content'] + eos_token }}\n{% elif message['role'] == 'system' %}\n{{ '<|system"
    "|>\n' + message['content'] + eos_token }}\n{% elif message['role'] == 'assistant' %}\n"
    "{{ '<|assistant|>\n'  + message['content'] + eos_token }}\n{% endif %}\n{% if loop.las"
    "t and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}",
    /* mistral_v3 */
    "{%- if messages[0]['role'] == 'system' %}\n    {%- set system_message = messages[0]['c"
    "ontent'] %}\n    {%- set loop_messages = messages[1:] %}\n{%- else %}\n    {%- set loo"
    "p_messages = messages %}\n{%- endif %}\n\n{{- bos_token }}\n{%- for message in loop_me"
    "ssages %}\n    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}\n      "
    "  {{- raise_exception('After the optional system message, conversation roles must alte"
    "rnate user/assistant/user/assistant/...') }}\n    {%- endif %}\n    {%- if message['ro"
    "le'] == 'user' %}\n        {%- if loop.first and system_message is defined %}\n       "
    "     {{- ' [INST] ' + system_message + '\\n\\n' + message['content'] + ' [/INST]' }}\n"
    "        {%- else %}\n            {{- ' [INST] ' + message['content'] + ' [/INST]' }}\n"
    "        {%- endif %}\n    {%- elif message['role'] == 'assistant' %}\n        {{- ' ' "
    "+ message['content'] + eos_token}}\n    {%- else %}\n        {{- raise_exception('Only"
    " user and assistant roles are supported, with the exception of an initial optional sys"
    "tem message!') }}\n    {%- endif %}\n{%- endfor %}\n",
    /* qwen25 */
    "{%- if tools %}\n    {{- '<|im_start|>system\\n' }}\n    {%- if messages[0]['role'] =="
    " 'system' %}\n        {{- messages[0]['content'] }}\n    {%- else %}\n        {{- 'You"
    " are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}\n    {%- endif %"
    "}\n    {{- \"\\n\\n# Tools\\n\\nYou may call one or more functions to assist with the "
    "user query.\\n\\nYou are provided with function signatures within <tools></tools> XML "
    "tags:\\n<tools>\" }}\n    {%- for tool in tools %}\n        {{- \"\\n\" }}\n        {{"
    "- tool | tojson }}\n    {%- endfor %}\n    {{- \"\\n</tools>\\n\\nFor each function ca"
    "ll, return a json object with function name and arguments within <tool_call></tool_cal"
    "l> XML tags:\\n<tool_call>\\n{\\\"name\\\": <function-name>, \\\"arguments\\\": <args-"
    "json-object>}\\n</tool_call><|im_end|>\\n\" }}\n{%- else %}\n    {%- if messages[0]['r"
    "ole'] == 'system' %}\n        {{- '<|im_start|>system\\n' + messages[0]['content'] + '"
    "<|im_end|>\\n' }}\n    {%- else %}\n        {{- '<|im_start|>system\\nYou are Qwen, cr"
    "eated by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' }}\n    {%- endif %"
    "}\n{%- endif %}\n{%- for message in messages %}\n    {%- if (message.role == \"user\")"
    " or (message.role == \"system\" and not loop.first) or (message.role == \"assistant\" "
    "and not message.tool_calls) %}\n        {{- '<|im_start|>' + message.role + '\\n' + me"
    "ssage.content + '<|im_end|>' + '\\n' }}\n    {%- elif message.role == \"assistant\" %}"
    "\n        {{- '<|im_start|>' + message.role }}\n        {%- if message.content %}\n   "
    "         {{- '\\n' + message.content }}\n        {%- endif %}\n        {%- for tool_ca"
    "ll in message.tool_calls %}\n            {%- if tool_call.function is defined %}\n    "
    "            {%- set tool_call = tool_call.function %}\n            {%- endif %}\n     "
    "       {{- '\\n<tool_call>\\n{\"name\": \"' }}\n            {{- tool_call.name }}\n   "
    "         {{- '\", \"arguments\": ' }}\n            {{- tool_call.arguments | tojson }}"
    "\n            {{- '}\\n</tool_call>' }}\n        {%- endfor %}\n        {{- '<|im_end|"
    ">\\n' }}\n    {%- elif message.role == \"tool\" %}\n        {%- if (loop.index0 == 0) "
    "or (messages[loop.index0 - 1].role != \"tool\") %}\n            {{- '<|im_start|>user'"
    " }}\n        {%- endif %}\n        {{- '\\n<tool_response>\\n' }}\n        {{- message"
    ".content }}\n        {{- '\\n</tool_response>' }}\n        {%- if loop.last or (messag"
    "es[loop.index0 + 1].role != \"tool\") %}\n            {{- '<|im_end|>\\n' }}\n        "
    "{%- endif %}\n    {%- endif %}\n{%- endfor %}\n{%- if add_generation_prompt %}\n    {{"
    "- '<|im_start|>assistant\\n' }}\n{%- endif %}\n",
    /* llama31 */
    "{{- bos_token }}\n{%- if custom_tools is defined %}\n    {%- set tools = custom_tools "
    "%}\n{%- endif %}\n{%- if not tools_in_user_message is defined %}\n    {%- set tools_in"
    "_user_message = true %}\n{%- endif %}\n{%- if not date_string is defined %}\n    {%- s"
    "et date_string = \"26 Jul 2024\" %}\n{%- endif %}\n{%- if not tools is defined %}\n   "
    " {%- set tools = none %}\n{%- endif %}\n\n{#- This block extracts the system message, "
    "so we can slot it into the right place. #}\n{%- if messages[0]['role'] == 'system' %}\n"
    "    {%- set system_message = messages[0]['content']|trim %}\n    {%- set messages = me"
    "ssages[1:] %}\n{%- else %}\n    {%- set system_message = \"\" %}\n{%- endif %}\n\n{#- "
    "System message + builtin tools #}\n{{- \"<|start_header_id|>system<|end_header_id|>\\n"
    "\\n\" }}\n{%- if builtin_tools is defined or tools is not none %}\n    {{- \"Environme"
    "nt: ipython\\n\" }}\n{%- endif %}\n{%- if builtin_tools is defined %}\n    {{- \"Tools"
    ": \" + builtin_tools | reject('equalto', 'code_interpreter') | join(\", \") + \"\\n\\n"
    "\"}}\n{%- endif %}\n{{- \"Cutting Knowledge Date: December 2023\\n\" }}\n{{- \"Today D"
    "ate: \" + date_string + \"\\n\\n\" }}\n{%- if tools is not none and not tools_in_user_"
    "message %}\n    {{- \"You have access to the following functions.\" }}\n    {%- for t "
    "in tools %}\n        {{- t | tojson(indent=4) }}\n        {{- \"\\n\\n\" }}\n    {%- e"
    "ndfor %}\n{%- endif %}\n{{- system_message }}\n{{- \"<|eot_id|>\" }}\n\n{%- for messag"
    "e in messages %}\n    {%- if not (message.role == 'ipython' or message.role == 'tool' "
    "or 'tool_calls' in message) %}\n        {{- '<|start_header_id|>' + message['role'] + "
    "'<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' }}\n    {%- elif '"
    "tool_calls' in message %}\n        {{- raise_exception(\"tool calls unsupported here\""
    ") }}\n    {%- endif %}\n{%- endfor %}\n{%- if add_generation_prompt %}\n    {{- '<|sta"
    "rt_header_id|>assistant<|end_header_id|>\\n\\n' }}\n{%- endif %}\n",
    /* deepseek */
    "{% if not add_generation_prompt is defined %}{% set add_generation_prompt = false %}{%"
    " endif %}{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %"
    "}{{ 'User: ' + message['content'] + '\n\n' }}{% elif message['role'] == 'assistant' %}"
    "{{ 'Assistant: ' + message['content'] + eos_token }}{% elif message['role'] == 'system"
    "' %}{{ message['content'] + '\n\n' }}{% endif %}{% endfor %}{% if add_generation_promp"
    "t %}{{ 'Assistant:' }}{% endif %}",
    /* vicuna */
    "{%- set ns = namespace(found=false) -%}{%- for message in messages -%}{%- if message['"
    "role'] == 'system' -%}{%- set ns.found = true -%}{%- endif -%}{%- endfor -%}{%- if not"
    " ns.found -%}{{- '' + 'A chat between a curious user and an artificial intelligence as"
    "sistant.' + '\\n\\n' -}}{%- endif %}{%- for message in messages %}{%- if message['role"
    "'] == 'system' -%}{{- '' + message['content'] + '\\n\\n' -}}{%- else -%}{%- if message"
    "['role'] == 'user' -%}{{-'USER: ' + message['content'] + '\\n'-}}{%- else -%}{{-'ASSIS"
    "TANT: ' + message['content'] + '</s>\\n' -}}{%- endif -%}{%- endif -%}{%- endfor -%}{%"
    "- if add_generation_prompt -%}{{-'ASSISTANT:'-}}{%- endif -%}",
    /* f_ws */
    "A\n  {% if true %}\n    B\n  {% endif %}\n  {{ 'C' }}  {% if true %}D{% endif %}\n{# c"
    " #}\nE {#- x -#} F\n\t{%+ if true %}G{% endif %}\n{%- if true -%}\n  H  \n{%- endif %}"
    "|",
    /* f_ws2 */
    "{% for m in messages %}\n    {%- if m.role == 'user' %}\n        U: {{ m.content }}\n "
    "   {% else %}\n        O: {{ m.content }}\n    {%- endif %}\n{% endfor %}\n  {# traili"
    "ng comment #}\nEND\n{%- if true %}\n\n  X\n{% endif -%}\n\n  Y",
    /* f_expr */
    "{{ 1 + 2 * 3 }}|{{ 7 // 2 }}|{{ -7 // 2 }}|{{ 7 % 3 }}|{{ -7 % 3 }}|{{ 2 ** 10 }}|{{ 7"
    " / 2 }}|{{ 1.5 + 1 }}|{{ 'a' ~ 1 ~ none }}|{{ 'ab' * 3 }}|{{ [1,2] + [3] }}|{{ {'a': 1"
    ", 'b': [true, none]} }}|{{ 3 > 2 and 'x' or 'y' }}|{{ 'yes' if 0 else 'no' }}|{{ not 1"
    " == 2 }}|{{ 'b' in 'abc' }}|{{ 3 not in [1,2] }}|{{ (1, 2) }}|{{ 1.0 }}|{{ 0.1 + 0.2 }"
    "}|{{ 1e3 }}|{{ 10 / 4 }}",
    /* f_filters */
    "{{ '  Hi  ' | trim }}|{{ 'abc' | upper }}|{{ 'ABC' | lower }}|{{ 'hello world' | title"
    " }}|{{ 'hello' | capitalize }}|{{ [1,2,3] | length }}|{{ 'h\303\251llo' | length }}|{{"
    " [1,2,3] | first }}|{{ [1,2,3] | last }}|{{ x | default('dflt') }}|{{ '' | default('e'"
    ", true) }}|{{ ['a','b'] | join(', ') }}|{{ {'k': [1, '\303\251', none, true, 1.5]} | t"
    "ojson }}|{{ [1,2] | tojson(indent=2) }}|{{ 5 | string }}|{{ '42' | int + 1 }}|{{ [3,1,"
    "2] | reverse | list }}|{{ 'aXbX' | replace('X', '-') }}|{{ {'a': 1, 'b': 2} | items | "
    "list }}|{{ messages | selectattr('role', 'equalto', 'user') | map(attribute='content')"
    " | join('+') }}|{{ messages | rejectattr('role', 'equalto', 'user') | list | length }}"
    "|{{ [1, 2, 2, 3] | unique | list }}|{{ -3 | abs }}|{{ 2.567 | round(1) }}|{{ 'a\\nb' |"
    " indent(2) }}|{{ [4, 2, 9] | max }}|{{ [4, 2, 9] | min }}|{{ [1, 2, 3] | sum }}",
    /* f_methods */
    "{{ '  x  '.strip() }}|{{ 'xxhixx'.strip('x') }}|{{ '  x'.lstrip() }}|{{ 'x  '.rstrip()"
    " }}|{{ 'hello'.startswith('he') }}|{{ 'hello'.endswith(('lo', 'x')) }}|{{ 'a,b,c'.spli"
    "t(',') }}|{{ 'a b  c'.split() }}|{{ 'a,b,c'.split(',', 1) }}|{{ 'Hi'.upper() }}|{{ 'ab"
    "'.replace('a', 'z') }}|{{ 'abc'.find('c') }}|{{ '-'.join(['a', 'b']) }}|{% set d = {'a"
    "': 1} %}{{ d.get('a') }},{{ d.get('z', 5) }},{{ d.keys() | list }},{{ d.values() | lis"
    "t }}|{% for k, v in d.items() %}{{ k }}={{ v }}{% endfor %}|{{ 'abcdef'[1:3] }}|{{ 'ab"
    "cdef'[::-1] }}|{{ [1,2,3,4][-2:] }}|{{ [1,2,3][-1] }}|{{ 'abc'[0] }}|{{ messages[0].ro"
    "le }}|{{ messages[0]['content'][:3] }}",
    /* f_loops */
    "{% for m in messages %}{{ loop.index }}/{{ loop.length }}:{{ loop.revindex0 }}{{ 'F' i"
    "f loop.first }}{{ 'L' if loop.last }}{% if loop.previtem is defined %}<{{ loop.previte"
    "m.role }}{% endif %};{% endfor %}|{% for i in range(10) %}{% if i == 2 %}{% continue %"
    "}{% endif %}{% if i == 5 %}{% break %}{% endif %}{{ i }}{% endfor %}|{% for i in [] %}"
    "x{% else %}empty{% endfor %}|{% for i in range(1, 10, 3) if i != 4 %}{{ i }}{{ loop.in"
    "dex }}{% endfor %}|{% set x = 1 %}{% for i in range(2) %}{% set x = x + 10 %}{{ x }}{%"
    " endfor %}{{ x }}|{% set ns = namespace(n=0) %}{% for i in range(4) %}{% set ns.n = ns"
    ".n + i %}{% endfor %}{{ ns.n }}|{% for a, b in [[1, 2], [3, 4]] %}{{ a + b }}{% endfor"
    " %}|{% for ch in 'h\303\251' %}[{{ ch }}]{% endfor %}",
    /* f_macro */
    "{% macro greet(name, punct='!') -%}Hello {{ name }}{{ punct }}{%- endmacro %}{{ greet("
    "'Bob') }}|{{ greet('Al', punct='?') }}|{{ greet(name='Z') }}|{% set blk %}inside {{ 1 "
    "+ 1 }}{% endset %}{{ blk | upper }}|{% raw %}{{ not evaluated }}{% endraw %}|{{ x is d"
    "efined }}|{{ none is none }}|{{ 3 is odd }}|{{ 4 is even }}|{{ 9 is divisibleby 3 }}|{"
    "{ 'a' is string }}|{{ 1 is number }}|{{ [1] is iterable }}|{{ {} is mapping }}|{{ 2 is"
    " not equalto 3 }}|{{ messages is sequence }}|{{ true is boolean }}",
    /* f_misc */
    "{{ '\\u00e9\\x41\\n' }}|{% for a in [1,2] %}{% for b in [3,4] %}{{ loop.index }}{{ a }"
    "}{{ b }},{% endfor %}{{ loop.index }};{% endfor %}|{{ 'x' if none is none else 'y' }}|"
    "{{ none | default('d') }}|{{ [1,2,3][1:] | length }}|{{ 'abc' ~ 5 * 2 }}|{{ (messages "
    "| length) > 1 }}|{{ messages[-1]['role'] | upper }}|{%- set a = 'A' -%}  {{ a }}  {%- "
    "set b = 'B' %}{{ b }}|{{ \"dq'\" }}|{{ 'sq\"' }}|{{ ['it\\'s'] }}|{{ 1 if true }}{{ 2 "
    "if false }}|{{ [1, [2, (3,)]] }}|{{ 5 // 2 * 2 + 7 % 4 - -1 }}|{{ 2 ** 3 ** 2 }}|{{ 1."
    "5e-7 }}|{{ 1e16 }}|{{ 123456.789 }}|{{ -0.5 }}",
};
static const char *const tmpl_name[] = {"llama2", "llama3", "chatml", "qwen2", "mistral", "phi3", "phi35", "gemma", "zephyr", "mistral_v3", "qwen25", "llama31", "deepseek", "vicuna", "f_ws", "f_ws2", "f_expr", "f_filters", "f_methods", "f_loops", "f_macro", "f_misc"};
static const char *const conv_name[] = {"u", "su", "uau", "suau", "uu"};
/* [template][conversation][add_generation_prompt]: expected text, or NULL when rendering
 * must fail (raise_exception). bos_token "<s>", eos_token "</s>". */
static const char *const expected[][5][2] = {
    { /* llama2 */
        {"<s>[INST] Hello [/INST]",
         "<s>[INST] Hello [/INST]"},
        {"<s>[INST] <<SYS>>\nYou are terse.\n<</SYS>>\n\nHi there [/INST]",
         "<s>[INST] <<SYS>>\nYou are terse.\n<</SYS>>\n\nHi there [/INST]"},
        {"<s>[INST] Hello [/INST] Hi! How can I help? </s><s>[INST] Tell me a joke\nplease [/INS"
          "T]",
         "<s>[INST] Hello [/INST] Hi! How can I help? </s><s>[INST] Tell me a joke\nplease [/INS"
          "T]"},
        {"<s>[INST] <<SYS>>\nBe nice.\n<</SYS>>\n\n  What is 2+2? [/INST] 4 </s><s>[INST] h\303\251"
          "llo w\303\266rld \342\234\223 \346\227\245\346\234\254 [/INST]",
         "<s>[INST] <<SYS>>\nBe nice.\n<</SYS>>\n\n  What is 2+2? [/INST] 4 </s><s>[INST] h\303\251"
          "llo w\303\266rld \342\234\223 \346\227\245\346\234\254 [/INST]"},
        {NULL,
         NULL},
    },
    { /* llama3 */
        {"<s><|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|>",
         "<s><|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|><|start_header_id|>assis"
          "tant<|end_header_id|>\n\n"},
        {"<s><|start_header_id|>system<|end_header_id|>\n\nYou are terse.<|eot_id|><|start_heade"
          "r_id|>user<|end_header_id|>\n\nHi there<|eot_id|>",
         "<s><|start_header_id|>system<|end_header_id|>\n\nYou are terse.<|eot_id|><|start_heade"
          "r_id|>user<|end_header_id|>\n\nHi there<|eot_id|><|start_header_id|>assistant<|end_hea"
          "der_id|>\n\n"},
        {"<s><|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|><|start_header_id|>assis"
          "tant<|end_header_id|>\n\nHi! How can I help?<|eot_id|><|start_header_id|>user<|end_hea"
          "der_id|>\n\nTell me a joke\nplease<|eot_id|>",
         "<s><|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|><|start_header_id|>assis"
          "tant<|end_header_id|>\n\nHi! How can I help?<|eot_id|><|start_header_id|>user<|end_hea"
          "der_id|>\n\nTell me a joke\nplease<|eot_id|><|start_header_id|>assistant<|end_header_i"
          "d|>\n\n"},
        {"<s><|start_header_id|>system<|end_header_id|>\n\nBe nice.<|eot_id|><|start_header_id|>"
          "user<|end_header_id|>\n\nWhat is 2+2?<|eot_id|><|start_header_id|>assistant<|end_heade"
          "r_id|>\n\n4<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nh\303\251llo w\303\266"
          "rld \342\234\223 \346\227\245\346\234\254<|eot_id|>",
         "<s><|start_header_id|>system<|end_header_id|>\n\nBe nice.<|eot_id|><|start_header_id|>"
          "user<|end_header_id|>\n\nWhat is 2+2?<|eot_id|><|start_header_id|>assistant<|end_heade"
          "r_id|>\n\n4<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nh\303\251llo w\303\266"
          "rld \342\234\223 \346\227\245\346\234\254<|eot_id|><|start_header_id|>assistant<|end_h"
          "eader_id|>\n\n"},
        {"<s><|start_header_id|>user<|end_header_id|>\n\na<|eot_id|><|start_header_id|>user<|end"
          "_header_id|>\n\nb<|eot_id|>",
         "<s><|start_header_id|>user<|end_header_id|>\n\na<|eot_id|><|start_header_id|>user<|end"
          "_header_id|>\n\nb<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"},
    },
    { /* chatml */
        {"<|im_start|>user\nHello<|im_end|>\n",
         "<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n"},
        {"<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nHi there<|im_end|>\n",
         "<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nHi there<|im_end|>\n<|"
          "im_start|>assistant\n"},
        {"<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n Hi! How can I help? <|im_en"
          "d|>\n<|im_start|>user\nTell me a joke\nplease<|im_end|>\n",
         "<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n Hi! How can I help? <|im_en"
          "d|>\n<|im_start|>user\nTell me a joke\nplease<|im_end|>\n<|im_start|>assistant\n"},
        {"<|im_start|>system\nBe nice.<|im_end|>\n<|im_start|>user\n  What is 2+2?<|im_end|>\n<|"
          "im_start|>assistant\n4<|im_end|>\n<|im_start|>user\nh\303\251llo w\303\266rld \342\234"
          "\223 \346\227\245\346\234\254<|im_end|>\n",
         "<|im_start|>system\nBe nice.<|im_end|>\n<|im_start|>user\n  What is 2+2?<|im_end|>\n<|"
          "im_start|>assistant\n4<|im_end|>\n<|im_start|>user\nh\303\251llo w\303\266rld \342\234"
          "\223 \346\227\245\346\234\254<|im_end|>\n<|im_start|>assistant\n"},
        {"<|im_start|>user\na<|im_end|>\n<|im_start|>user\nb<|im_end|>\n",
         "<|im_start|>user\na<|im_end|>\n<|im_start|>user\nb<|im_end|>\n<|im_start|>assistant\n"},
    },
    { /* qwen2 */
        {"<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHello<|i"
          "m_end|>\n",
         "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHello<|i"
          "m_end|>\n<|im_start|>assistant\n"},
        {"<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nHi there<|im_end|>\n",
         "<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nHi there<|im_end|>\n<|"
          "im_start|>assistant\n"},
        {"<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHello<|i"
          "m_end|>\n<|im_start|>assistant\n Hi! How can I help? <|im_end|>\n<|im_start|>user\nTel"
          "l me a joke\nplease<|im_end|>\n",
         "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHello<|i"
          "m_end|>\n<|im_start|>assistant\n Hi! How can I help? <|im_end|>\n<|im_start|>user\nTel"
          "l me a joke\nplease<|im_end|>\n<|im_start|>assistant\n"},
        {"<|im_start|>system\nBe nice.<|im_end|>\n<|im_start|>user\n  What is 2+2?<|im_end|>\n<|"
          "im_start|>assistant\n4<|im_end|>\n<|im_start|>user\nh\303\251llo w\303\266rld \342\234"
          "\223 \346\227\245\346\234\254<|im_end|>\n",
         "<|im_start|>system\nBe nice.<|im_end|>\n<|im_start|>user\n  What is 2+2?<|im_end|>\n<|"
          "im_start|>assistant\n4<|im_end|>\n<|im_start|>user\nh\303\251llo w\303\266rld \342\234"
          "\223 \346\227\245\346\234\254<|im_end|>\n<|im_start|>assistant\n"},
        {"<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\na<|im_en"
          "d|>\n<|im_start|>user\nb<|im_end|>\n",
         "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\na<|im_en"
          "d|>\n<|im_start|>user\nb<|im_end|>\n<|im_start|>assistant\n"},
    },
    { /* mistral */
        {"<s>[INST] Hello [/INST]",
         "<s>[INST] Hello [/INST]"},
        {NULL,
         NULL},
        {"<s>[INST] Hello [/INST] Hi! How can I help? </s>[INST] Tell me a joke\nplease [/INST]",
         "<s>[INST] Hello [/INST] Hi! How can I help? </s>[INST] Tell me a joke\nplease [/INST]"},
        {NULL,
         NULL},
        {NULL,
         NULL},
    },
    { /* phi3 */
        {"<s><|user|>\nHello<|end|>\n<|assistant|>\n",
         "<s><|user|>\nHello<|end|>\n<|assistant|>\n"},
        {"<s><|user|>\nHi there<|end|>\n<|assistant|>\n",
         "<s><|user|>\nHi there<|end|>\n<|assistant|>\n"},
        {"<s><|user|>\nHello<|end|>\n<|assistant|>\n Hi! How can I help? <|end|>\n<|user|>\nTell"
          " me a joke\nplease<|end|>\n<|assistant|>\n",
         "<s><|user|>\nHello<|end|>\n<|assistant|>\n Hi! How can I help? <|end|>\n<|user|>\nTell"
          " me a joke\nplease<|end|>\n<|assistant|>\n"},
        {"<s><|user|>\n  What is 2+2?<|end|>\n<|assistant|>\n4<|end|>\n<|user|>\nh\303\251llo w\303"
          "\266rld \342\234\223 \346\227\245\346\234\254<|end|>\n<|assistant|>\n",
         "<s><|user|>\n  What is 2+2?<|end|>\n<|assistant|>\n4<|end|>\n<|user|>\nh\303\251llo w\303"
          "\266rld \342\234\223 \346\227\245\346\234\254<|end|>\n<|assistant|>\n"},
        {"<s><|user|>\na<|end|>\n<|assistant|>\n<|user|>\nb<|end|>\n<|assistant|>\n",
         "<s><|user|>\na<|end|>\n<|assistant|>\n<|user|>\nb<|end|>\n<|assistant|>\n"},
    },
    { /* phi35 */
        {"<|user|>\nHello<|end|>\n</s>",
         "<|user|>\nHello<|end|>\n<|assistant|>\n"},
        {"<|system|>\nYou are terse.<|end|>\n<|user|>\nHi there<|end|>\n</s>",
         "<|system|>\nYou are terse.<|end|>\n<|user|>\nHi there<|end|>\n<|assistant|>\n"},
        {"<|user|>\nHello<|end|>\n<|assistant|>\n Hi! How can I help? <|end|>\n<|user|>\nTell me"
          " a joke\nplease<|end|>\n</s>",
         "<|user|>\nHello<|end|>\n<|assistant|>\n Hi! How can I help? <|end|>\n<|user|>\nTell me"
          " a joke\nplease<|end|>\n<|assistant|>\n"},
        {"<|system|>\nBe nice.<|end|>\n<|user|>\n  What is 2+2?<|end|>\n<|assistant|>\n4<|end|>\n"
          "<|user|>\nh\303\251llo w\303\266rld \342\234\223 \346\227\245\346\234\254<|end|>\n</s>",
         "<|system|>\nBe nice.<|end|>\n<|user|>\n  What is 2+2?<|end|>\n<|assistant|>\n4<|end|>\n"
          "<|user|>\nh\303\251llo w\303\266rld \342\234\223 \346\227\245\346\234\254<|end|>\n<|as"
          "sistant|>\n"},
        {"<|user|>\na<|end|>\n<|user|>\nb<|end|>\n</s>",
         "<|user|>\na<|end|>\n<|user|>\nb<|end|>\n<|assistant|>\n"},
    },
    { /* gemma */
        {"<s><start_of_turn>user\nHello<end_of_turn>\n",
         "<s><start_of_turn>user\nHello<end_of_turn>\n<start_of_turn>model\n"},
        {NULL,
         NULL},
        {"<s><start_of_turn>user\nHello<end_of_turn>\n<start_of_turn>model\nHi! How can I help?<"
          "end_of_turn>\n<start_of_turn>user\nTell me a joke\nplease<end_of_turn>\n",
         "<s><start_of_turn>user\nHello<end_of_turn>\n<start_of_turn>model\nHi! How can I help?<"
          "end_of_turn>\n<start_of_turn>user\nTell me a joke\nplease<end_of_turn>\n<start_of_turn"
          ">model\n"},
        {NULL,
         NULL},
        {NULL,
         NULL},
    },
    { /* zephyr */
        {"<|user|>\nHello</s>\n",
         "<|user|>\nHello</s>\n<|assistant|>\n"},
        {"<|system|>\nYou are terse.</s>\n<|user|>\nHi there</s>\n",
         "<|system|>\nYou are terse.</s>\n<|user|>\nHi there</s>\n<|assistant|>\n"},
        {"<|user|>\nHello</s>\n<|assistant|>\n Hi! How can I help? </s>\n<|user|>\nTell me a jok"
          "e\nplease</s>\n",
         "<|user|>\nHello</s>\n<|assistant|>\n Hi! How can I help? </s>\n<|user|>\nTell me a jok"
          "e\nplease</s>\n<|assistant|>\n"},
        {"<|system|>\nBe nice.</s>\n<|user|>\n  What is 2+2?</s>\n<|assistant|>\n4</s>\n<|user|>"
          "\nh\303\251llo w\303\266rld \342\234\223 \346\227\245\346\234\254</s>\n",
         "<|system|>\nBe nice.</s>\n<|user|>\n  What is 2+2?</s>\n<|assistant|>\n4</s>\n<|user|>"
          "\nh\303\251llo w\303\266rld \342\234\223 \346\227\245\346\234\254</s>\n<|assistant|>\n"},
        {"<|user|>\na</s>\n<|user|>\nb</s>\n",
         "<|user|>\na</s>\n<|user|>\nb</s>\n<|assistant|>\n"},
    },
    { /* mistral_v3 */
        {"<s> [INST] Hello [/INST]",
         "<s> [INST] Hello [/INST]"},
        {"<s> [INST] You are terse.\n\nHi there [/INST]",
         "<s> [INST] You are terse.\n\nHi there [/INST]"},
        {"<s> [INST] Hello [/INST]  Hi! How can I help? </s> [INST] Tell me a joke\nplease [/INS"
          "T]",
         "<s> [INST] Hello [/INST]  Hi! How can I help? </s> [INST] Tell me a joke\nplease [/INS"
          "T]"},
        {"<s> [INST] Be nice.\n\n  What is 2+2? [/INST] 4</s> [INST] h\303\251llo w\303\266rld \342"
          "\234\223 \346\227\245\346\234\254 [/INST]",
         "<s> [INST] Be nice.\n\n  What is 2+2? [/INST] 4</s> [INST] h\303\251llo w\303\266rld \342"
          "\234\223 \346\227\245\346\234\254 [/INST]"},
        {NULL,
         NULL},
    },
    { /* qwen25 */
        {"<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistan"
          "t.<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n",
         "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistan"
          "t.<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n"},
        {"<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nHi there<|im_end|>\n",
         "<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nHi there<|im_end|>\n<|"
          "im_start|>assistant\n"},
        {"<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistan"
          "t.<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n Hi! How can I"
          " help? <|im_end|>\n<|im_start|>user\nTell me a joke\nplease<|im_end|>\n",
         "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistan"
          "t.<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n Hi! How can I"
          " help? <|im_end|>\n<|im_start|>user\nTell me a joke\nplease<|im_end|>\n<|im_start|>ass"
          "istant\n"},
        {"<|im_start|>system\nBe nice.<|im_end|>\n<|im_start|>user\n  What is 2+2?<|im_end|>\n<|"
          "im_start|>assistant\n4<|im_end|>\n<|im_start|>user\nh\303\251llo w\303\266rld \342\234"
          "\223 \346\227\245\346\234\254<|im_end|>\n",
         "<|im_start|>system\nBe nice.<|im_end|>\n<|im_start|>user\n  What is 2+2?<|im_end|>\n<|"
          "im_start|>assistant\n4<|im_end|>\n<|im_start|>user\nh\303\251llo w\303\266rld \342\234"
          "\223 \346\227\245\346\234\254<|im_end|>\n<|im_start|>assistant\n"},
        {"<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistan"
          "t.<|im_end|>\n<|im_start|>user\na<|im_end|>\n<|im_start|>user\nb<|im_end|>\n",
         "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistan"
          "t.<|im_end|>\n<|im_start|>user\na<|im_end|>\n<|im_start|>user\nb<|im_end|>\n<|im_start"
          "|>assistant\n"},
    },
    { /* llama31 */
        {"<s><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023"
          "\nToday Date: 26 Jul 2024\n\n<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHel"
          "lo<|eot_id|>",
         "<s><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023"
          "\nToday Date: 26 Jul 2024\n\n<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHel"
          "lo<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"},
        {"<s><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023"
          "\nToday Date: 26 Jul 2024\n\nYou are terse.<|eot_id|><|start_header_id|>user<|end_head"
          "er_id|>\n\nHi there<|eot_id|>",
         "<s><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023"
          "\nToday Date: 26 Jul 2024\n\nYou are terse.<|eot_id|><|start_header_id|>user<|end_head"
          "er_id|>\n\nHi there<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"},
        {"<s><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023"
          "\nToday Date: 26 Jul 2024\n\n<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHel"
          "lo<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nHi! How can I help?<|eot_"
          "id|><|start_header_id|>user<|end_header_id|>\n\nTell me a joke\nplease<|eot_id|>",
         "<s><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023"
          "\nToday Date: 26 Jul 2024\n\n<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHel"
          "lo<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nHi! How can I help?<|eot_"
          "id|><|start_header_id|>user<|end_header_id|>\n\nTell me a joke\nplease<|eot_id|><|star"
          "t_header_id|>assistant<|end_header_id|>\n\n"},
        {"<s><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023"
          "\nToday Date: 26 Jul 2024\n\nBe nice.<|eot_id|><|start_header_id|>user<|end_header_id|"
          ">\n\nWhat is 2+2?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n4<|eot_id|"
          "><|start_header_id|>user<|end_header_id|>\n\nh\303\251llo w\303\266rld \342\234\223 \346"
          "\227\245\346\234\254<|eot_id|>",
         "<s><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023"
          "\nToday Date: 26 Jul 2024\n\nBe nice.<|eot_id|><|start_header_id|>user<|end_header_id|"
          ">\n\nWhat is 2+2?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n4<|eot_id|"
          "><|start_header_id|>user<|end_header_id|>\n\nh\303\251llo w\303\266rld \342\234\223 \346"
          "\227\245\346\234\254<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"},
        {"<s><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023"
          "\nToday Date: 26 Jul 2024\n\n<|eot_id|><|start_header_id|>user<|end_header_id|>\n\na<|"
          "eot_id|><|start_header_id|>user<|end_header_id|>\n\nb<|eot_id|>",
         "<s><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023"
          "\nToday Date: 26 Jul 2024\n\n<|eot_id|><|start_header_id|>user<|end_header_id|>\n\na<|"
          "eot_id|><|start_header_id|>user<|end_header_id|>\n\nb<|eot_id|><|start_header_id|>assi"
          "stant<|end_header_id|>\n\n"},
    },
    { /* deepseek */
        {"<s>User: Hello\n\n",
         "<s>User: Hello\n\nAssistant:"},
        {"<s>You are terse.\n\nUser: Hi there\n\n",
         "<s>You are terse.\n\nUser: Hi there\n\nAssistant:"},
        {"<s>User: Hello\n\nAssistant:  Hi! How can I help? </s>User: Tell me a joke\nplease\n\n",
         "<s>User: Hello\n\nAssistant:  Hi! How can I help? </s>User: Tell me a joke\nplease\n\n"
          "Assistant:"},
        {"<s>Be nice.\n\nUser:   What is 2+2?\n\nAssistant: 4</s>User: h\303\251llo w\303\266rld"
          " \342\234\223 \346\227\245\346\234\254\n\n",
         "<s>Be nice.\n\nUser:   What is 2+2?\n\nAssistant: 4</s>User: h\303\251llo w\303\266rld"
          " \342\234\223 \346\227\245\346\234\254\n\nAssistant:"},
        {"<s>User: a\n\nUser: b\n\n",
         "<s>User: a\n\nUser: b\n\nAssistant:"},
    },
    { /* vicuna */
        {"A chat between a curious user and an artificial intelligence assistant.\n\nUSER: Hello"
          "\n",
         "A chat between a curious user and an artificial intelligence assistant.\n\nUSER: Hello"
          "\nASSISTANT:"},
        {"You are terse.\n\nUSER: Hi there\n",
         "You are terse.\n\nUSER: Hi there\nASSISTANT:"},
        {"A chat between a curious user and an artificial intelligence assistant.\n\nUSER: Hello"
          "\nASSISTANT:  Hi! How can I help? </s>\nUSER: Tell me a joke\nplease\n",
         "A chat between a curious user and an artificial intelligence assistant.\n\nUSER: Hello"
          "\nASSISTANT:  Hi! How can I help? </s>\nUSER: Tell me a joke\nplease\nASSISTANT:"},
        {"Be nice.\n\nUSER:   What is 2+2?\nASSISTANT: 4</s>\nUSER: h\303\251llo w\303\266rld \342"
          "\234\223 \346\227\245\346\234\254\n",
         "Be nice.\n\nUSER:   What is 2+2?\nASSISTANT: 4</s>\nUSER: h\303\251llo w\303\266rld \342"
          "\234\223 \346\227\245\346\234\254\nASSISTANT:"},
        {"A chat between a curious user and an artificial intelligence assistant.\n\nUSER: a\nUS"
          "ER: b\n",
         "A chat between a curious user and an artificial intelligence assistant.\n\nUSER: a\nUS"
          "ER: b\nASSISTANT:"},
    },
    { /* f_ws */
        {"A\n    B\n  C  DEF\n\tGH|",
         "A\n    B\n  C  DEF\n\tGH|"},
        {"A\n    B\n  C  DEF\n\tGH|",
         "A\n    B\n  C  DEF\n\tGH|"},
        {"A\n    B\n  C  DEF\n\tGH|",
         "A\n    B\n  C  DEF\n\tGH|"},
        {"A\n    B\n  C  DEF\n\tGH|",
         "A\n    B\n  C  DEF\n\tGH|"},
        {"A\n    B\n  C  DEF\n\tGH|",
         "A\n    B\n  C  DEF\n\tGH|"},
    },
    { /* f_ws2 */
        {"        U: Hello\nEND\n  X\nY",
         "        U: Hello\nEND\n  X\nY"},
        {"        O: You are terse.        U: Hi there\nEND\n  X\nY",
         "        O: You are terse.        U: Hi there\nEND\n  X\nY"},
        {"        U: Hello\n        O:  Hi! How can I help?         U: Tell me a joke\nplease\nE"
          "ND\n  X\nY",
         "        U: Hello\n        O:  Hi! How can I help?         U: Tell me a joke\nplease\nE"
          "ND\n  X\nY"},
        {"        O: Be nice.        U:   What is 2+2?\n        O: 4        U: h\303\251llo w\303"
          "\266rld \342\234\223 \346\227\245\346\234\254\nEND\n  X\nY",
         "        O: Be nice.        U:   What is 2+2?\n        O: 4        U: h\303\251llo w\303"
          "\266rld \342\234\223 \346\227\245\346\234\254\nEND\n  X\nY"},
        {"        U: a\n        U: b\nEND\n  X\nY",
         "        U: a\n        U: b\nEND\n  X\nY"},
    },
    { /* f_expr */
        {"7|3|-4|1|2|1024|3.5|2.5|a1None|ababab|[1, 2, 3]|{'a': 1, 'b': [True, None]}|x|no|True|"
          "True|True|(1, 2)|1.0|0.30000000000000004|1000.0|2.5",
         "7|3|-4|1|2|1024|3.5|2.5|a1None|ababab|[1, 2, 3]|{'a': 1, 'b': [True, None]}|x|no|True|"
          "True|True|(1, 2)|1.0|0.30000000000000004|1000.0|2.5"},
        {"7|3|-4|1|2|1024|3.5|2.5|a1None|ababab|[1, 2, 3]|{'a': 1, 'b': [True, None]}|x|no|True|"
          "True|True|(1, 2)|1.0|0.30000000000000004|1000.0|2.5",
         "7|3|-4|1|2|1024|3.5|2.5|a1None|ababab|[1, 2, 3]|{'a': 1, 'b': [True, None]}|x|no|True|"
          "True|True|(1, 2)|1.0|0.30000000000000004|1000.0|2.5"},
        {"7|3|-4|1|2|1024|3.5|2.5|a1None|ababab|[1, 2, 3]|{'a': 1, 'b': [True, None]}|x|no|True|"
          "True|True|(1, 2)|1.0|0.30000000000000004|1000.0|2.5",
         "7|3|-4|1|2|1024|3.5|2.5|a1None|ababab|[1, 2, 3]|{'a': 1, 'b': [True, None]}|x|no|True|"
          "True|True|(1, 2)|1.0|0.30000000000000004|1000.0|2.5"},
        {"7|3|-4|1|2|1024|3.5|2.5|a1None|ababab|[1, 2, 3]|{'a': 1, 'b': [True, None]}|x|no|True|"
          "True|True|(1, 2)|1.0|0.30000000000000004|1000.0|2.5",
         "7|3|-4|1|2|1024|3.5|2.5|a1None|ababab|[1, 2, 3]|{'a': 1, 'b': [True, None]}|x|no|True|"
          "True|True|(1, 2)|1.0|0.30000000000000004|1000.0|2.5"},
        {"7|3|-4|1|2|1024|3.5|2.5|a1None|ababab|[1, 2, 3]|{'a': 1, 'b': [True, None]}|x|no|True|"
          "True|True|(1, 2)|1.0|0.30000000000000004|1000.0|2.5",
         "7|3|-4|1|2|1024|3.5|2.5|a1None|ababab|[1, 2, 3]|{'a': 1, 'b': [True, None]}|x|no|True|"
          "True|True|(1, 2)|1.0|0.30000000000000004|1000.0|2.5"},
    },
    { /* f_filters */
        {"Hi|ABC|abc|Hello World|Hello|3|5|1|3|dflt|e|a, b|{\"k\": [1, \"\303\251\", null, true,"
          " 1.5]}|[\n  1,\n  2\n]|5|43|[2, 1, 3]|a-b-|[('a', 1), ('b', 2)]|Hello|0|[1, 2, 3]|3|2."
          "6|a\n  b|9|2|6",
         "Hi|ABC|abc|Hello World|Hello|3|5|1|3|dflt|e|a, b|{\"k\": [1, \"\303\251\", null, true,"
          " 1.5]}|[\n  1,\n  2\n]|5|43|[2, 1, 3]|a-b-|[('a', 1), ('b', 2)]|Hello|0|[1, 2, 3]|3|2."
          "6|a\n  b|9|2|6"},
        {"Hi|ABC|abc|Hello World|Hello|3|5|1|3|dflt|e|a, b|{\"k\": [1, \"\303\251\", null, true,"
          " 1.5]}|[\n  1,\n  2\n]|5|43|[2, 1, 3]|a-b-|[('a', 1), ('b', 2)]|Hi there|1|[1, 2, 3]|3"
          "|2.6|a\n  b|9|2|6",
         "Hi|ABC|abc|Hello World|Hello|3|5|1|3|dflt|e|a, b|{\"k\": [1, \"\303\251\", null, true,"
          " 1.5]}|[\n  1,\n  2\n]|5|43|[2, 1, 3]|a-b-|[('a', 1), ('b', 2)]|Hi there|1|[1, 2, 3]|3"
          "|2.6|a\n  b|9|2|6"},
        {"Hi|ABC|abc|Hello World|Hello|3|5|1|3|dflt|e|a, b|{\"k\": [1, \"\303\251\", null, true,"
          " 1.5]}|[\n  1,\n  2\n]|5|43|[2, 1, 3]|a-b-|[('a', 1), ('b', 2)]|Hello+Tell me a joke\n"
          "please|1|[1, 2, 3]|3|2.6|a\n  b|9|2|6",
         "Hi|ABC|abc|Hello World|Hello|3|5|1|3|dflt|e|a, b|{\"k\": [1, \"\303\251\", null, true,"
          " 1.5]}|[\n  1,\n  2\n]|5|43|[2, 1, 3]|a-b-|[('a', 1), ('b', 2)]|Hello+Tell me a joke\n"
          "please|1|[1, 2, 3]|3|2.6|a\n  b|9|2|6"},
        {"Hi|ABC|abc|Hello World|Hello|3|5|1|3|dflt|e|a, b|{\"k\": [1, \"\303\251\", null, true,"
          " 1.5]}|[\n  1,\n  2\n]|5|43|[2, 1, 3]|a-b-|[('a', 1), ('b', 2)]|  What is 2+2?+h\303\251"
          "llo w\303\266rld \342\234\223 \346\227\245\346\234\254|2|[1, 2, 3]|3|2.6|a\n  b|9|2|6",
         "Hi|ABC|abc|Hello World|Hello|3|5|1|3|dflt|e|a, b|{\"k\": [1, \"\303\251\", null, true,"
          " 1.5]}|[\n  1,\n  2\n]|5|43|[2, 1, 3]|a-b-|[('a', 1), ('b', 2)]|  What is 2+2?+h\303\251"
          "llo w\303\266rld \342\234\223 \346\227\245\346\234\254|2|[1, 2, 3]|3|2.6|a\n  b|9|2|6"},
        {"Hi|ABC|abc|Hello World|Hello|3|5|1|3|dflt|e|a, b|{\"k\": [1, \"\303\251\", null, true,"
          " 1.5]}|[\n  1,\n  2\n]|5|43|[2, 1, 3]|a-b-|[('a', 1), ('b', 2)]|a+b|0|[1, 2, 3]|3|2.6|"
          "a\n  b|9|2|6",
         "Hi|ABC|abc|Hello World|Hello|3|5|1|3|dflt|e|a, b|{\"k\": [1, \"\303\251\", null, true,"
          " 1.5]}|[\n  1,\n  2\n]|5|43|[2, 1, 3]|a-b-|[('a', 1), ('b', 2)]|a+b|0|[1, 2, 3]|3|2.6|"
          "a\n  b|9|2|6"},
    },
    { /* f_methods */
        {"x|hi|x|x|True|True|['a', 'b', 'c']|['a', 'b', 'c']|['a', 'b,c']|HI|zb|2|a-b|1,5,['a'],"
          "[1]|a=1|bc|fedcba|[3, 4]|3|a|user|Hel",
         "x|hi|x|x|True|True|['a', 'b', 'c']|['a', 'b', 'c']|['a', 'b,c']|HI|zb|2|a-b|1,5,['a'],"
          "[1]|a=1|bc|fedcba|[3, 4]|3|a|user|Hel"},
        {"x|hi|x|x|True|True|['a', 'b', 'c']|['a', 'b', 'c']|['a', 'b,c']|HI|zb|2|a-b|1,5,['a'],"
          "[1]|a=1|bc|fedcba|[3, 4]|3|a|system|You",
         "x|hi|x|x|True|True|['a', 'b', 'c']|['a', 'b', 'c']|['a', 'b,c']|HI|zb|2|a-b|1,5,['a'],"
          "[1]|a=1|bc|fedcba|[3, 4]|3|a|system|You"},
        {"x|hi|x|x|True|True|['a', 'b', 'c']|['a', 'b', 'c']|['a', 'b,c']|HI|zb|2|a-b|1,5,['a'],"
          "[1]|a=1|bc|fedcba|[3, 4]|3|a|user|Hel",
         "x|hi|x|x|True|True|['a', 'b', 'c']|['a', 'b', 'c']|['a', 'b,c']|HI|zb|2|a-b|1,5,['a'],"
          "[1]|a=1|bc|fedcba|[3, 4]|3|a|user|Hel"},
        {"x|hi|x|x|True|True|['a', 'b', 'c']|['a', 'b', 'c']|['a', 'b,c']|HI|zb|2|a-b|1,5,['a'],"
          "[1]|a=1|bc|fedcba|[3, 4]|3|a|system|Be ",
         "x|hi|x|x|True|True|['a', 'b', 'c']|['a', 'b', 'c']|['a', 'b,c']|HI|zb|2|a-b|1,5,['a'],"
          "[1]|a=1|bc|fedcba|[3, 4]|3|a|system|Be "},
        {"x|hi|x|x|True|True|['a', 'b', 'c']|['a', 'b', 'c']|['a', 'b,c']|HI|zb|2|a-b|1,5,['a'],"
          "[1]|a=1|bc|fedcba|[3, 4]|3|a|user|a",
         "x|hi|x|x|True|True|['a', 'b', 'c']|['a', 'b', 'c']|['a', 'b,c']|HI|zb|2|a-b|1,5,['a'],"
          "[1]|a=1|bc|fedcba|[3, 4]|3|a|user|a"},
    },
    { /* f_loops */
        {"1/1:0FL;|0134|empty|1172|11111|6|37|[h][\303\251]",
         "1/1:0FL;|0134|empty|1172|11111|6|37|[h][\303\251]"},
        {"1/2:1F;2/2:0L<system;|0134|empty|1172|11111|6|37|[h][\303\251]",
         "1/2:1F;2/2:0L<system;|0134|empty|1172|11111|6|37|[h][\303\251]"},
        {"1/3:2F;2/3:1<user;3/3:0L<assistant;|0134|empty|1172|11111|6|37|[h][\303\251]",
         "1/3:2F;2/3:1<user;3/3:0L<assistant;|0134|empty|1172|11111|6|37|[h][\303\251]"},
        {"1/4:3F;2/4:2<system;3/4:1<user;4/4:0L<assistant;|0134|empty|1172|11111|6|37|[h][\303\251"
          "]",
         "1/4:3F;2/4:2<system;3/4:1<user;4/4:0L<assistant;|0134|empty|1172|11111|6|37|[h][\303\251"
          "]"},
        {"1/2:1F;2/2:0L<user;|0134|empty|1172|11111|6|37|[h][\303\251]",
         "1/2:1F;2/2:0L<user;|0134|empty|1172|11111|6|37|[h][\303\251]"},
    },
    { /* f_macro */
        {"Hello Bob!|Hello Al?|Hello Z!|INSIDE 2|{{ not evaluated }}|False|True|True|True|True|T"
          "rue|True|True|True|True|True|True",
         "Hello Bob!|Hello Al?|Hello Z!|INSIDE 2|{{ not evaluated }}|False|True|True|True|True|T"
          "rue|True|True|True|True|True|True"},
        {"Hello Bob!|Hello Al?|Hello Z!|INSIDE 2|{{ not evaluated }}|False|True|True|True|True|T"
          "rue|True|True|True|True|True|True",
         "Hello Bob!|Hello Al?|Hello Z!|INSIDE 2|{{ not evaluated }}|False|True|True|True|True|T"
          "rue|True|True|True|True|True|True"},
        {"Hello Bob!|Hello Al?|Hello Z!|INSIDE 2|{{ not evaluated }}|False|True|True|True|True|T"
          "rue|True|True|True|True|True|True",
         "Hello Bob!|Hello Al?|Hello Z!|INSIDE 2|{{ not evaluated }}|False|True|True|True|True|T"
          "rue|True|True|True|True|True|True"},
        {"Hello Bob!|Hello Al?|Hello Z!|INSIDE 2|{{ not evaluated }}|False|True|True|True|True|T"
          "rue|True|True|True|True|True|True",
         "Hello Bob!|Hello Al?|Hello Z!|INSIDE 2|{{ not evaluated }}|False|True|True|True|True|T"
          "rue|True|True|True|True|True|True"},
        {"Hello Bob!|Hello Al?|Hello Z!|INSIDE 2|{{ not evaluated }}|False|True|True|True|True|T"
          "rue|True|True|True|True|True|True",
         "Hello Bob!|Hello Al?|Hello Z!|INSIDE 2|{{ not evaluated }}|False|True|True|True|True|T"
          "rue|True|True|True|True|True|True"},
    },
    { /* f_misc */
        {"\303\251A\n|113,214,1;123,224,2;|x|None|2|abc10|False|USER|AB|dq'|sq\"|[\"it's\"]|1|[1"
          ", [2, (3,)]]|8|64|1.5e-07|1e+16|123456.789|-0.5",
         "\303\251A\n|113,214,1;123,224,2;|x|None|2|abc10|False|USER|AB|dq'|sq\"|[\"it's\"]|1|[1"
          ", [2, (3,)]]|8|64|1.5e-07|1e+16|123456.789|-0.5"},
        {"\303\251A\n|113,214,1;123,224,2;|x|None|2|abc10|True|USER|AB|dq'|sq\"|[\"it's\"]|1|[1,"
          " [2, (3,)]]|8|64|1.5e-07|1e+16|123456.789|-0.5",
         "\303\251A\n|113,214,1;123,224,2;|x|None|2|abc10|True|USER|AB|dq'|sq\"|[\"it's\"]|1|[1,"
          " [2, (3,)]]|8|64|1.5e-07|1e+16|123456.789|-0.5"},
        {"\303\251A\n|113,214,1;123,224,2;|x|None|2|abc10|True|USER|AB|dq'|sq\"|[\"it's\"]|1|[1,"
          " [2, (3,)]]|8|64|1.5e-07|1e+16|123456.789|-0.5",
         "\303\251A\n|113,214,1;123,224,2;|x|None|2|abc10|True|USER|AB|dq'|sq\"|[\"it's\"]|1|[1,"
          " [2, (3,)]]|8|64|1.5e-07|1e+16|123456.789|-0.5"},
        {"\303\251A\n|113,214,1;123,224,2;|x|None|2|abc10|True|USER|AB|dq'|sq\"|[\"it's\"]|1|[1,"
          " [2, (3,)]]|8|64|1.5e-07|1e+16|123456.789|-0.5",
         "\303\251A\n|113,214,1;123,224,2;|x|None|2|abc10|True|USER|AB|dq'|sq\"|[\"it's\"]|1|[1,"
          " [2, (3,)]]|8|64|1.5e-07|1e+16|123456.789|-0.5"},
        {"\303\251A\n|113,214,1;123,224,2;|x|None|2|abc10|True|USER|AB|dq'|sq\"|[\"it's\"]|1|[1,"
          " [2, (3,)]]|8|64|1.5e-07|1e+16|123456.789|-0.5",
         "\303\251A\n|113,214,1;123,224,2;|x|None|2|abc10|True|USER|AB|dq'|sq\"|[\"it's\"]|1|[1,"
          " [2, (3,)]]|8|64|1.5e-07|1e+16|123456.789|-0.5"},
    },
};

typedef struct conv {
    const inf_chat_message *m;
    size_t n;
} conv;

static const inf_chat_message c_u[] = {{"user", "Hello"}};
static const inf_chat_message c_su[] = {{"system", "You are terse."}, {"user", "Hi there"}};
static const inf_chat_message c_uau[] = {{"user", "Hello"},
                                         {"assistant", " Hi! How can I help? "},
                                         {"user", "Tell me a joke\nplease"}};
static const inf_chat_message c_suau[] = {{"system", "Be nice."},
                                          {"user", "  What is 2+2?"},
                                          {"assistant", "4"},
                                          {"user", "h\303\251llo w\303\266rld \342\234\223 "
                                                   "\346\227\245\346\234\254"}};
static const inf_chat_message c_uu[] = {{"user", "a"}, {"user", "b"}};
static const conv convs[] = {{c_u, 1}, {c_su, 2}, {c_uau, 3}, {c_suau, 4}, {c_uu, 2}};

static void test_vectors(void **state) {
    (void)state;
    size_t nt = INF_ARRAY_LEN(tmpl_src), nc = INF_ARRAY_LEN(convs);
    assert_int_equal(nt, INF_ARRAY_LEN(expected));
    assert_int_equal(nc, INF_ARRAY_LEN(conv_name));
    int failures = 0;
    for (size_t t = 0; t < nt; t++)
        for (size_t c = 0; c < nc; c++)
            for (int g = 0; g < 2; g++) {
                char *out = NULL;
                int rc = inf_chat_template_apply(tmpl_src[t], convs[c].m, convs[c].n, g, "<s>",
                                                 "</s>", &out);
                const char *want = expected[t][c][g];
                bool ok = want ? rc == 0 && out && !strcmp(out, want) : rc == INF_EINVAL;
                if (!ok) {
                    failures++;
                    fprintf(stderr, "%s / %s / gen=%d: rc=%d (%s)\n  want: %s\n  got:  %s\n",
                            tmpl_name[t], conv_name[c], g, rc, inf_last_error(),
                            want ? want : "(error)", out ? out : "(null)");
                }
                free(out);
            }
    assert_int_equal(failures, 0);
}

static void test_fallback(void **state) {
    (void)state;
    char *out = NULL;
    assert_int_equal(inf_chat_template_apply(NULL, c_suau, 4, true, "<s>", "</s>", &out), 0);
    assert_string_equal(out, "<|im_start|>system\nBe nice.<|im_end|>\n"
                             "<|im_start|>user\n  What is 2+2?<|im_end|>\n"
                             "<|im_start|>assistant\n4<|im_end|>\n"
                             "<|im_start|>user\nh\303\251llo w\303\266rld \342\234\223 "
                             "\346\227\245\346\234\254<|im_end|>\n"
                             "<|im_start|>assistant\n");
    free(out);
    assert_int_equal(inf_chat_template_apply(NULL, c_u, 1, false, NULL, NULL, &out), 0);
    assert_string_equal(out, "<|im_start|>user\nHello<|im_end|>\n");
    free(out);
}

static int render(const char *tmpl, char **out) {
    *out = NULL;
    return inf_chat_template_apply(tmpl, c_uau, 3, true, "<s>", "</s>", out);
}

static void test_errors(void **state) {
    (void)state;
    char *out;
    /* raise_exception: INF_EINVAL with the template's message */
    assert_int_equal(render("{{ raise_exception('no way: ' ~ messages|length) }}", &out),
                     INF_EINVAL);
    assert_null(out);
    assert_non_null(strstr(inf_last_error(), "no way: 3"));
    /* syntax errors: INF_EFORMAT naming the line */
    static const char *const bad[] = {
        "{{ }}", "{{ 1 + }}", "{% if true %}x", "{% for x in %}{% endfor %}", "{{ 'abc }}",
        "{% endif %}", "{% bogus %}", "{{ (1 }}", "{{ [1, 2 }}", "{{ a. }}", "{# open",
        "{{ x | }}", "{% set %}", "{% macro m( %}{% endmacro %}", "{{ 1 $ 2 }}", "{{",
        "{%", "{% if %}{% endif %}", "{{ 'x' is }}", "{% for %}", "{{ 99999999999999999999 }}",
        "line1\nline2 {{ 1 +* 2 }}",
    };
    for (size_t i = 0; i < INF_ARRAY_LEN(bad); i++) {
        int rc = render(bad[i], &out);
        if (rc != INF_EFORMAT) fprintf(stderr, "template %zu: rc %d\n", i, rc);
        assert_int_equal(rc, INF_EFORMAT);
        assert_null(out);
    }
    assert_int_equal(render("line1\nline2 {{ 1 +* 2 }}", &out), INF_EFORMAT);
    assert_non_null(strstr(inf_last_error(), "line 2"));
    /* runtime type errors: INF_EINVAL */
    static const char *const rt[] = {"{{ 1 + 'a' }}", "{{ 1 // 0 }}", "{{ 'a' < 1 }}",
                                     "{{ messages | bogusfilter }}", "{{ 1 is bogustest }}",
                                     "{{ 'x'.nomethod() }}", "{% for a, b in [1] %}{% endfor %}",
                                     "{{ 3() }}"};
    for (size_t i = 0; i < INF_ARRAY_LEN(rt); i++) {
        assert_int_equal(render(rt[i], &out), INF_EINVAL);
        assert_null(out);
    }
    /* NULL arguments */
    assert_int_equal(inf_chat_template_apply("x", NULL, 1, false, NULL, NULL, &out), INF_EINVAL);
    assert_int_equal(inf_chat_template_apply("x", c_u, 1, false, NULL, NULL, NULL), INF_EINVAL);
    inf_chat_message nulls[] = {{"user", NULL}};
    assert_int_equal(inf_chat_template_apply("x", nulls, 1, false, NULL, NULL, &out), INF_EINVAL);
}

static void test_lenient_undefined(void **state) {
    (void)state;
    char *out;
    assert_int_equal(render("[{{ nope }}][{{ nope.attr.deeper }}][{{ nope['k'] }}]"
                            "[{{ nope is defined }}][{{ messages[99] is defined }}]",
                            &out),
                     0);
    assert_string_equal(out, "[][][][False][False]");
    free(out);
}

static void test_limits(void **state) {
    (void)state;
    char *out;
    /* unbounded work or memory is cut off with an error, quickly */
    double t0 = inf__time_s();
    assert_int_equal(render("{% for i in range(1000000000) %}{% endfor %}", &out), INF_EINVAL);
    assert_int_equal(render("{% for i in range(3000) %}{% for j in range(3000) %}{% for k in "
                            "range(3000) %}{% endfor %}{% endfor %}{% endfor %}",
                            &out),
                     INF_EINVAL);
    assert_int_equal(render("{% set ns = namespace(s='xxxxxxxxxxxxxxxx') %}{% for i in range(40) "
                            "%}{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s|length }}",
                            &out),
                     INF_EINVAL);
    assert_int_equal(render("{{ 'x' * 1000000000000 }}", &out), INF_EINVAL);
    /* integer powers take O(log exponent) steps (fuzz_chat_template found 1 ** 10**17 hanging) */
    assert_int_equal(render("{{ 1 ** 1000000000000000000 }} {{ (-1) ** 999999999999999999 }} "
                            "{{ 0 ** 4000000000000000000 }} {{ 0 ** 0 }} {{ (-2) ** 63 }} "
                            "{{ 3 ** 39 }} {{ 2 ** 10 }}",
                            &out),
                     0);
    assert_string_equal(out, "1 -1 0 1 -9223372036854775808 4052555153018976267 1024");
    free(out);
    assert_int_equal(render("{{ 2 ** 63 }}", &out), INF_EINVAL);
    assert_int_equal(render("{{ 3 ** 40 }}", &out), INF_EINVAL);
    assert_int_equal(render("{{ (-3) ** 41 }}", &out), INF_EINVAL);
    /* range and slice steps that would step past int64 end the sequence (no overflow) */
    assert_int_equal(render("{{ range(9223372036854775806, 9223372036854775807, "
                            "9223372036854775807) | list }} {{ range(-9223372036854775807, "
                            "-9223372036854775807 - 1, -9) | list }} {{ [1, 2, 3][2::"
                            "-9223372036854775807] }} {{ 'abc'[0::9223372036854775807] }}",
                            &out),
                     0);
    assert_string_equal(out, "[9223372036854775806] [-9223372036854775807] [3] a");
    free(out);
    /* int64 edges: negation and abs of the minimum become floats, int of a float checks range */
    assert_int_equal(render("{{ -(-9223372036854775807 - 1) > 0 }} {{ ((-9223372036854775807 - 1) "
                            "| abs) > 0 }} {{ 9223372036854775807 | int }} "
                            "{{ -9.223372036854775808e18 | int }}",
                            &out),
                     0);
    assert_string_equal(out, "True True 9223372036854775807 -9223372036854775808");
    free(out);
    assert_int_equal(render("{{ 1e308 | int }}", &out), INF_EINVAL);
    assert_int_equal(render("{{ [9223372036854775807, -1, true] | sum }} {{ [9223372036854775807, "
                            "9223372036854775807] | sum > 1e19 }}",
                            &out),
                     0);
    assert_string_equal(out, "9223372036854775807 True");
    free(out);
    assert_true(inf__time_s() - t0 < 20);
    /* deep nesting is an error, not a stack overflow */
    inf_sb sb = {0};
    for (int i = 0; i < 5000; i++) inf__sb_putc(&sb, '(');
    inf__sb_puts(&sb, "1");
    for (int i = 0; i < 5000; i++) inf__sb_putc(&sb, ')');
    char *deep = inf__sb_take(&sb);
    char *tmpl = malloc(strlen(deep) + 16);
    sprintf(tmpl, "{{ %s }}", deep);
    assert_int_equal(render(tmpl, &out), INF_EFORMAT);
    free(tmpl);
    free(deep);
    inf_sb sb2 = {0};
    for (int i = 0; i < 3000; i++) inf__sb_puts(&sb2, "{% if true %}");
    for (int i = 0; i < 3000; i++) inf__sb_puts(&sb2, "{% endif %}");
    char *ifs = inf__sb_take(&sb2);
    assert_int_equal(render(ifs, &out), INF_EFORMAT);
    free(ifs);
    /* a macro calling itself */
    assert_int_equal(render("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", &out),
                     INF_EINVAL);
}

static void test_garbage(void **state) {
    (void)state;
    static const char *const frag[] = {"{{", "}}", "{%", "%}", "{#", "#}", "-", "+", " ", "\n",
                                       "'", "\"", "(", ")", "[", "]", "{", "}", "if", "for",
                                       "endif", "endfor", "set", "x", "=", "in", "|", "trim",
                                       "messages", ".", ",", "1", "loop", "is", "not", "\\",
                                       "raw", "endraw", "macro", "endmacro", "*", "~", ":"};
    inf_rng rng;
    inf__rng_seed(&rng, 12345);
    int ok = 0;
    for (int it = 0; it < 3000; it++) {
        char buf[512];
        size_t len = 0;
        int n = 1 + (int)(inf__rng_next(&rng) % 40);
        for (int k = 0; k < n; k++) {
            const char *f = frag[inf__rng_next(&rng) % INF_ARRAY_LEN(frag)];
            size_t fl = strlen(f);
            if (len + fl >= sizeof buf) break;
            memcpy(buf + len, f, fl);
            len += fl;
        }
        buf[len] = 0;
        char *out = NULL;
        int rc = render(buf, &out);
        assert_true(rc == 0 || rc == INF_EFORMAT || rc == INF_EINVAL);
        assert_true((rc == 0) == (out != NULL));
        ok += rc == 0;
        free(out);
    }
    assert_true(ok > 0);
}

/* The fixture models carry real templates (Llama 2 in tiny-llama, ChatML in tiny-qwen2). */
static void test_model_templates(void **state) {
    (void)state;
    const char *fx = getenv("INFERNEO_FIXTURES");
    char path[4096];
    snprintf(path, sizeof path, "%s/models/tiny-llama-f16.gguf", fx ? fx : "../shared/fixtures");
    inf_model_params mp = inf_model_params_default();
    mp.vocab_only = true;
    inf_model *m = NULL;
    if (inf_model_load(path, &mp, &m) < 0) {
        fprintf(stderr, "skipping: cannot load %s: %s\n", path, inf_last_error());
        skip();
    }
    char *out = NULL;
    /* Llama 2 renders "<s>[INST] …": the leading BOS text is dropped (tokenization adds BOS) */
    assert_int_equal(inf_chat_format(m, c_su, 2, true, &out), 0);
    assert_string_equal(out, "[INST] <<SYS>>\nYou are terse.\n<</SYS>>\n\nHi there [/INST]");
    inf_free(out);
    assert_int_equal(inf_chat_format(m, c_uau, 3, true, &out), 0);
    assert_string_equal(out, "[INST] Hello [/INST] Hi! How can I help? </s><s>[INST] Tell me a "
                             "joke\nplease [/INST]");
    inf_free(out);
    assert_int_equal(inf_chat_format(m, c_uu, 2, true, &out), INF_EINVAL);
    assert_null(out);
    assert_non_null(strstr(inf_last_error(), "alternate"));
    inf_model_free(m);

    snprintf(path, sizeof path, "%s/models/tiny-qwen2-f16.gguf", fx ? fx : "../shared/fixtures");
    assert_int_equal(inf_model_load(path, &mp, &m), 0);
    assert_int_equal(inf_chat_format(m, c_su, 2, true, &out), 0);
    assert_string_equal(out, "<|im_start|>system\nYou are terse.<|im_end|>\n"
                             "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n");
    inf_free(out);
    inf_model_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors),          cmocka_unit_test(test_fallback),
        cmocka_unit_test(test_errors),           cmocka_unit_test(test_lenient_undefined),
        cmocka_unit_test(test_limits),           cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_model_templates),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
